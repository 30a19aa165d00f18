import { expect } from "chai";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Agent } from "../../appliance/agent.ts";
import { runChild } from "../../lib/child-process.ts";
import { homeLayout } from "../../lib/paths.ts";
import { waitFor, withDeadline } from "../../lib/wait.ts";
import { consoleUser, signInFirstAdmin } from "../support/console-users.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";
import { runTempDir } from "../support/run-dir.ts";
import type { WebClient } from "../support/web-client.ts";

const MIB = 1024 * 1024;

/** A multipart upload to the agent's real console listener, written as slowly as the test likes. */
interface RawUpload {
  /** The answer, whenever it comes (also before the body is all sent). */
  answer: Promise<{ status: number; text: string }>;
  /** Send the rest of the declared body. */
  finish(): void;
  /** Cut the connection mid-body, as a client that went away. */
  abort(): void;
}

function rawUpload(consoleUrl: string, cookie: string, opts: { csrf: string; fileName: string; fileBytes: number; first: Buffer }): RawUpload {
  const boundary = `----plum${randomBytes(8).toString("hex")}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="_csrf"\r\n\r\n${opts.csrf}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="bundle"; filename="${opts.fileName}"\r\nContent-Type: application/x-tar\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const url = new URL("/releases", consoleUrl);
  const req = http.request(url, {
    method: "POST",
    headers: {
      cookie,
      accept: "text/html",
      "content-type": `multipart/form-data; boundary=${boundary}`,
      "content-length": String(head.length + opts.fileBytes + tail.length),
    },
  });
  const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
    req.once("response", (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, text }));
      res.on("error", reject);
    });
    req.once("error", reject);
  });
  answer.catch(() => undefined); // an aborted upload has no answer; the tests that wait for one say so
  req.write(Buffer.concat([head, opts.first]));
  return {
    answer,
    finish() {
      const rest = opts.fileBytes - opts.first.length;
      req.end(Buffer.concat([Buffer.alloc(rest), tail]));
    },
    abort() {
      req.destroy();
    },
  };
}

/** Where a file named `name` is, if anywhere: the agent's staging folder or an old-style temp upload folder. */
function storedCopies(stagingDir: string, name: string): string[] {
  const places = [
    stagingDir,
    ...readdirSync(tmpdir())
      .filter((n) => n.startsWith("plum-bundle-upload-"))
      .map((n) => path.join(tmpdir(), n)),
  ];
  return places.map((dir) => path.join(dir, name)).filter((file) => existsSync(file));
}

/** A console bundle upload against a real in-process agent on its own listener. */
describe("security: console bundle upload", function () {
  this.timeout(120_000);
  let agent: Agent;
  let stop: () => Promise<void>;
  let operator: WebClient;
  let releasesDir: string;
  let stagingDir: string;
  let bogus: Buffer;

  before(async () => {
    ({ agent, stop } = await startInProcessAgent((config) => {
      config.security.loginRateLimitPerMinute = 1000;
      // A key is configured, so an upload that gets through reaches the format check.
      config.releases.vendorPublicKey = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString();
    }));
    const admin = await signInFirstAdmin(agent);
    operator = await consoleUser(agent, admin, "opal", "operator");
    releasesDir = homeLayout(agent.config.home).releasesDir;
    stagingDir = path.join(releasesDir, ".upload");
    const scratch = runTempDir("plum-upload-");
    writeFileSync(path.join(scratch, "bogus.txt"), "not a release\n");
    await runChild(["tar", "-cf", path.join(scratch, "bogus.tar"), "-C", scratch, "bogus.txt"], { what: "tar (a bogus bundle)", timeoutMs: 60_000 });
    bogus = readFileSync(path.join(scratch, "bogus.tar"));
  });
  after(async () => stop?.());

  const fileName = () => `plum-9.9.9-${randomBytes(4).toString("hex")}.tar`;

  /** A whole upload of the bogus tar, as the page's form sends it. */
  async function bogusUpload(name = fileName()) {
    const csrf = await operator.csrfFrom("/releases");
    const upload = rawUpload(agent.urls.console, operator.cookieHeader(), { csrf, fileName: name, fileBytes: bogus.length, first: bogus });
    upload.finish();
    return withDeadline("the answer to a whole upload", 60_000, upload.answer);
  }

  it("refuses a forged form before storing a byte of its file, without waiting for the rest of the body", async () => {
    const name = fileName();
    const upload = rawUpload(agent.urls.console, operator.cookieHeader(), {
      csrf: "forged",
      fileName: name,
      fileBytes: 64 * MIB,
      first: Buffer.alloc(256 * 1024),
    });
    try {
      const answer = await withDeadline("the console to refuse the forged upload (of which 256 KiB of 64 MiB were sent)", 10_000, upload.answer);
      expect(answer.status).to.equal(403);
      expect(answer.text).to.include("missing or wrong CSRF token");
      expect(storedCopies(stagingDir, name), "nothing of the forged upload was written").to.deep.equal([]);
    } finally {
      upload.abort();
    }
  });

  it("takes one upload at a time, staged under PLUM_HOME; a second gets 409; a cut upload leaves nothing and frees the slot", async () => {
    const name = fileName();
    const csrf = await operator.csrfFrom("/releases");
    const first = rawUpload(agent.urls.console, operator.cookieHeader(), { csrf, fileName: name, fileBytes: 32 * MIB, first: Buffer.alloc(256 * 1024) });
    try {
      const where = await waitFor("the first upload to be stored", async () => storedCopies(stagingDir, name)[0], { timeoutMs: 10_000 });

      const second = await bogusUpload();
      expect(second.status, second.text).to.equal(409);
      expect(second.text).to.match(
        /Another bundle upload is under way \(by user:opal, since \d\d:\d\d:\d\d UTC\): the console takes one at a time\. Wait for it to finish, then upload again\./,
      );
      expect(where, "staged beside the releases, under PLUM_HOME").to.equal(path.join(stagingDir, name));
    } finally {
      first.abort();
    }
    await waitFor("the cut upload's file to go", async () => (storedCopies(stagingDir, name).length === 0 ? true : undefined), { timeoutMs: 5_000 });
    expect(existsSync(stagingDir), "no partial upload is left").to.equal(false);

    const third = await bogusUpload();
    expect(third.status, "the slot is free again: the upload reaches the import's checks").to.equal(422);
    expect(third.text).to.include('data-testid="failed-check">format<');
    await waitFor("the refused upload to go", async () => (existsSync(stagingDir) ? undefined : true), { timeoutMs: 5_000 });
  });

  it("refuses an upload the disk cannot hold, with the numbers, before storing it", async function () {
    // A 16 MiB file system under the releases: the real free-space figure, not a pretended one (needs root to mount).
    mkdirSync(releasesDir, { recursive: true });
    try {
      await runChild(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", releasesDir], { what: "mount (a small file system)", timeoutMs: 30_000 });
    } catch {
      return this.skip(); // not root (mount is refused): the unit test covers the refusal on a pretended figure
    }
    try {
      const name = fileName();
      const csrf = await operator.csrfFrom("/releases");
      const upload = rawUpload(agent.urls.console, operator.cookieHeader(), { csrf, fileName: name, fileBytes: 2 * MIB, first: Buffer.alloc(64 * 1024) });
      try {
        const answer = await withDeadline("the console to refuse the upload for want of disk", 10_000, upload.answer);
        expect(answer.status, answer.text).to.equal(507);
        expect(answer.text).to.match(
          new RegExp(
            `16 MiB free on ${releasesDir}, 208 MiB needed to take this 2 MiB upload and import it \\(the bundle, 3 × its size to unpack, 200 MiB to work\\)\\. Free space there, or import on the host: plumctl release import FILE\\.`,
          ),
        );
        expect(storedCopies(stagingDir, name)).to.deep.equal([]);
      } finally {
        upload.abort();
      }
    } finally {
      await runChild(["umount", releasesDir], { what: "umount", timeoutMs: 30_000 });
    }
  });
});
