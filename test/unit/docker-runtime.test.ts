import { expect } from "chai";
import { applianceTag, containerDatabaseUrl, containerName, demuxLogs, envDigest, hardenedHostConfig } from "../../appliance/runtimes/docker-runtime.ts";
import { importChanges, lddPaths, rootfsTarArgs } from "../../appliance/releases/container-image.ts";
import { dockerSocketPath } from "../../lib/docker/engine.ts";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

describe("docker runtime: the pure parts", () => {
  it("points loopback database URLs at the containers' gateway and leaves others alone", () => {
    expect(containerDatabaseUrl("postgres://plum_app:p%40ss@127.0.0.1:5433/plum", "10.1.2.1")).to.equal("postgres://plum_app:p%40ss@10.1.2.1:5433/plum");
    expect(containerDatabaseUrl("postgresql://u:p@localhost/plum", "10.1.2.1")).to.equal("postgresql://u:p@10.1.2.1/plum");
    expect(containerDatabaseUrl("postgres://u:p@db.example.internal:5432/plum", "10.1.2.1")).to.equal("postgres://u:p@db.example.internal:5432/plum");
    expect(containerDatabaseUrl("not a url 127.0.0.1", "10.1.2.1")).to.equal("not a url 127.0.0.1");
  });

  it("names containers by a digest of the appliance, never its path", () => {
    const tag = applianceTag("/var/lib/plum");
    expect(tag).to.match(/^[0-9a-f]{12}$/);
    expect(containerName(tag, "production", "1.2.0+build.5")).to.equal(`plum-${tag}-production-1.2.0_build.5`);
  });

  it("hardens every container the same way", () => {
    expect(hardenedHostConfig({ network: "plum-instances", memoryMb: 256, cpus: 1.5, binds: ["/a:/app:ro"] })).to.deep.include({
      NetworkMode: "plum-instances",
      ReadonlyRootfs: true,
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      Memory: 256 * 1024 * 1024,
      MemorySwap: 256 * 1024 * 1024,
      NanoCpus: 1.5e9,
      PidsLimit: 512,
      Binds: ["/a:/app:ro"],
    });
  });

  it("digests an environment independently of key order", () => {
    expect(envDigest({ A: "1", B: "2" })).to.equal(envDigest({ B: "2", A: "1" }));
    expect(envDigest({ A: "1" })).not.to.equal(envDigest({ A: "2" }));
  });

  it("splits a container log stream into stdout and stderr", () => {
    const frame = (kind: number, text: string) => {
      const body = Buffer.from(text);
      const head = Buffer.alloc(8);
      head[0] = kind;
      head.writeUInt32BE(body.length, 4);
      return Buffer.concat([head, body]);
    };
    expect(demuxLogs(Buffer.concat([frame(1, "out1\n"), frame(2, "err\n"), frame(1, "out2\n")]))).to.deep.equal({ stdout: "out1\nout2\n", stderr: "err\n" });
  });

  it("reads the libraries ldd lists, with and without an arrow", () => {
    const out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
    expect(lddPaths(out)).to.deep.equal(["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]);
  });

  it("gives images a non-root user, the release's plumctl and labels, and no secret-bearing field", () => {
    const changes = importChanges({ tag: "plum-product:1.0.0", appDir: "/x", labels: { "io.plum.version": "1.0.0" } });
    expect(changes).to.include("USER 10001:10001");
    expect(changes).to.include('ENTRYPOINT ["/usr/local/bin/node", "/app/bin/plumctl.js"]');
    expect(changes).to.include('LABEL io.plum.version="1.0.0"');
  });

  it("tars the runtime files as they are and the release under app/", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "plum-rootfs-"));
    try {
      mkdirSync(path.join(dir, "stage", "etc"), { recursive: true });
      mkdirSync(path.join(dir, "app", "dist"), { recursive: true });
      writeFileSync(path.join(dir, "app", "package.json"), "{}");
      const args = rootfsTarArgs(path.join(dir, "stage"), path.join(dir, "app"));
      expect(args).to.include("--transform=s,^\\./,app/,S");
      expect(args.slice(-4)).to.deep.equal(["-C", path.join(dir, "app"), "./dist", "./package.json"]);
      mkdirSync(path.join(dir, "empty"));
      expect(rootfsTarArgs(path.join(dir, "stage"), path.join(dir, "empty")).at(-1)).to.equal("etc");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("talks to a local engine socket only", () => {
    expect(dockerSocketPath(undefined, {})).to.equal("/var/run/docker.sock");
    expect(dockerSocketPath(undefined, { DOCKER_HOST: "unix:///run/d.sock" })).to.equal("/run/d.sock");
    expect(() => dockerSocketPath(undefined, { DOCKER_HOST: "tcp://10.0.0.1:2375" })).to.throw(/not a local engine socket/);
  });
});
