// An edge proxy run the way the installed agent runs it: on the listening socket systemd passed (LISTEN_FDS),
// sending everything to the upstream named on the command line; SIGTERM closes it as an agent stop does.
import { Registry } from "prom-client";
import { EdgeProxy } from "../../appliance/proxy/edge-proxy.ts";
import { createLogger } from "../../lib/logger.ts";
import { listenOn } from "../../lib/systemd-sockets.ts";

const upstream = process.argv[2];
const on = listenOn("proxy", 0, "127.0.0.1");
if (!("fd" in on)) {
  process.stderr.write("no socket named proxy was passed\n");
  process.exit(2);
}
const proxy = new EdgeProxy({ log: createLogger("passed-socket-proxy", { level: "silent" }), registry: new Registry() });
proxy.switchTo({ id: "production@test", version: "test", url: upstream });
const port = await proxy.listen(on);
process.stdout.write(`listening pid=${process.pid} fd=${on.fd} port=${port}\n`);
process.on("SIGTERM", () => {
  void proxy.close(10_000).then(() => process.exit(0));
});
