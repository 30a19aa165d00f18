import { BlockList, isIP } from "node:net";

/**
 * Which proxies' X-Forwarded-For entries count: a number (that many nearest hops, whatever their address) or a
 * list of addresses and CIDR blocks ("10.0.0.5", "10.0.0.0/8", "::1", or "loopback"). None (0 or []) by default:
 * then req.ip is the address the connection came from, and a client cannot choose its own address by sending
 * the header (the per-address sign-in limit and the audit log's addresses depend on it).
 */
export type TrustedProxies = number | string[];

/** Express's `trust proxy` as a function: is the hop'th address from the socket (0: the socket's peer) a proxy we trust? */
export type TrustFunction = (address: string, hop: number) => boolean;

const KEYWORDS: Record<string, string[]> = { loopback: ["127.0.0.0/8", "::1/128"] };

/** Why an entry of a trusted-proxy list is not an address, a CIDR block or "loopback"; undefined when it is. */
export function trustedProxyProblem(entry: string): string | undefined {
  if (KEYWORDS[entry]) return undefined;
  const [address, bits, extra] = entry.split("/");
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return `"${entry}" is not an IP address, a CIDR block (10.0.0.0/8) or "loopback"`;
  if (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)))
    return `"${entry}" has a prefix length that is not 0–${family === 4 ? 32 : 128}`;
  return undefined;
}

/** IPv4 clients of a dual-stack listener arrive as ::ffff:a.b.c.d. */
function plain(address: string): string {
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

function addressMatcher(entries: string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const entry of entries.flatMap((e) => KEYWORDS[e] ?? [e])) {
    const problem = trustedProxyProblem(entry);
    if (problem) throw new Error(`trusted proxy ${problem}`);
    const [address, bits] = entry.split("/");
    const family = isIP(address) === 4 ? "ipv4" : "ipv6";
    if (bits === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(bits), family);
  }
  return (address) => {
    const a = plain(address);
    const family = isIP(a);
    return family !== 0 && list.check(a, family === 4 ? "ipv4" : "ipv6");
  };
}

/** Trust exactly the proxies configured: a hop count, or the hops whose address is listed. */
export function trustProxies(trusted: TrustedProxies): TrustFunction {
  if (typeof trusted === "number") return (_address, hop) => hop < trusted;
  if (trusted.length === 0) return () => false;
  const listed = addressMatcher(trusted);
  return (address) => listed(address);
}

/**
 * A product instance: every request reaches it through the agent's edge proxy, which appends the address it
 * saw to X-Forwarded-For; that one hop is trusted, so req.ip is the real client. Proxies in front of the edge
 * proxy count only when configured (`further`).
 */
export function behindEdgeProxy(further: TrustedProxies): TrustFunction {
  const beyond = trustProxies(further);
  return (address, hop) => hop === 0 || beyond(address, hop - 1);
}
