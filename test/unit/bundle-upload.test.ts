import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import express, { type NextFunction, type Request, type Response } from "express";
import request from "supertest";
import { waitFor } from "../../lib/wait.ts";
import { HttpError } from "../../lib/http/http-errors.ts";
import { bundleUpload } from "../../appliance/console/uploads/bundle-upload.ts";

const GIB = 1024 ** 3;

describe("bundle upload", () => {
  let root: string;
  let staging: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), "plum-upload-unit-"));
    staging = path.join(root, "releases", ".upload");
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  /** The folder goes when the server side of the response closes, which may be just after the client has its answer. */
  const stagingGone = () => waitFor("the staging folder to go", async () => (existsSync(staging) ? undefined : true), { timeoutMs: 2_000 });

  /** The middleware alone, with a 1 KiB limit and a CSRF check wanting "token", in front of a route that reports what it was given. */
  function appWith(allowed: boolean, freeBytes = 10 * GIB) {
    const app = express();
    const seen: Array<{ path?: string; existed: boolean; name?: string; csrf?: string }> = [];
    const csrf = (req: Request, _res: Response, next: NextFunction) => (req.body?._csrf === "token" ? next() : next(new HttpError(403, "wrong CSRF token")));
    app.use(
      bundleUpload({
        path: "/releases",
        allowed: () => (allowed ? "user:op" : undefined),
        csrf,
        staging: { dir: staging, freeBytes: () => freeBytes },
        limitBytes: 1024,
      }),
    );
    app.post("/releases", (req, res) => {
      seen.push({
        path: req.file?.path,
        existed: !!req.file && existsSync(req.file.path),
        name: req.file && path.basename(req.file.path),
        csrf: req.body?._csrf,
      });
      res.status(204).end();
    });
    app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
      res.status(err instanceof HttpError ? err.status : 500).json({ error: (err as Error).message });
    });
    return { app, seen };
  }

  it("streams the bundle to the staging folder for the route, under a safe name, and removes it with the response", async () => {
    const { app, seen } = appWith(true);
    const res = await request(app).post("/releases").field("_csrf", "token").attach("bundle", Buffer.alloc(100), "../../plum-1.2.3.tar");
    expect(res.status).to.equal(204);
    expect(seen[0]).to.include({ existed: true, name: "plum-1.2.3.tar", csrf: "token" });
    expect(path.dirname(seen[0].path!)).to.equal(staging);
    await stagingGone();
    expect(existsSync(seen[0].path!)).to.equal(false);
  });

  it("refuses a bundle over the limit with 413 and keeps nothing", async () => {
    const { app, seen } = appWith(true);
    const res = await request(app)
      .post("/releases")
      .field("_csrf", "token")
      .attach("bundle", Buffer.alloc(128 * 1024), "plum-1.2.3.tar");
    expect(res.status).to.equal(413);
    expect(res.body.error).to.equal(
      "The bundle is larger than 1 KiB, the most the console accepts. Import it on the host instead: plumctl release import FILE.",
    );
    expect(seen).to.deep.equal([]);
    await stagingGone();
  });

  it("refuses a file that comes without the right CSRF field before it, and stores none of it", async () => {
    const { app, seen } = appWith(true);
    const res = await request(app).post("/releases").field("_csrf", "forged").attach("bundle", Buffer.alloc(100), "plum-1.2.3.tar");
    expect(res.status).to.equal(403);
    expect(res.body.error).to.equal("wrong CSRF token");
    expect(seen).to.deep.equal([]);
    await stagingGone();
  });

  it("refuses an upload the disk cannot hold, with the numbers, before reading it", async () => {
    const { app, seen } = appWith(true, 50 * 1024 ** 2);
    const res = await request(app).post("/releases").field("_csrf", "token").attach("bundle", Buffer.alloc(100), "plum-1.2.3.tar");
    expect(res.status, res.body.error).to.equal(507);
    expect(res.body.error).to.match(
      /^50 MiB free on .+releases, 200(\.\d)? MiB needed to take this \d+(\.\d)? KiB upload and import it \(the bundle, 3 × its size to unpack, 200 MiB to work\)\. Free space there, or import on the host: plumctl release import FILE\.$/,
    );
    expect(seen).to.deep.equal([]);
    expect(existsSync(staging)).to.equal(false);
  });

  it("writes nothing to disk for who may not import", async () => {
    const { app, seen } = appWith(false);
    const res = await request(app).post("/releases").attach("bundle", Buffer.alloc(100), "plum-1.2.3.tar");
    expect(res.status).to.equal(204);
    expect(seen[0]).to.include({ existed: false, path: undefined });
    expect(readdirSync(root)).to.deep.equal([]);
  });
});
