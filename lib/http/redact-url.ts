/**
 * Paths whose segment is a credential: a voucher's share token (`/v/:token`, its QR images) and a POS voucher
 * code (`/api/pos/vouchers/:code`). Whoever holds one can show or redeem the voucher, so logs never do.
 */
const SECRET_SEGMENTS = [/^(\/v\/)[^/?#]+/, /^(\/api\/pos\/vouchers\/)[^/?#]+/];
/** Query parameters that carry a secret (a CSRF token in an upload form's action, any token, code, key or password). */
const SECRET_PARAM = /token|csrf|code|key|secret|password|passwd|signature|sig$/i;

export const REDACTED = "[redacted]";

/** A request URL as logs may hold it: secret path segments and secret query values replaced by [redacted]. */
export function redactUrl(url: string): string {
  const q = url.indexOf("?");
  let pathPart = q < 0 ? url : url.slice(0, q);
  for (const pattern of SECRET_SEGMENTS) pathPart = pathPart.replace(pattern, `$1${REDACTED}`);
  if (q < 0) return pathPart;
  const query = url
    .slice(q + 1)
    .split("&")
    .map((pair) => {
      const eq = pair.indexOf("=");
      const name = eq < 0 ? pair : pair.slice(0, eq);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name.replace(/\+/g, " "));
      } catch {
        // a malformed name is kept as sent
      }
      return eq >= 0 && SECRET_PARAM.test(decoded) ? `${name}=${REDACTED}` : pair;
    })
    .join("&");
  return `${pathPart}?${query}`;
}
