import { existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import express, { type NextFunction, type Request, type Response } from "express";
import request from "supertest";
import { waitFor } from "../../lib/wait.ts";
import { HttpError } from "../../lib/http/http-errors.ts";
import { bundleUpload } from "../../appliance/console/uploads/bundle-upload.ts";

const uploadFolders = () => readdirSync(tmpdir()).filter((n) => n.startsWith("plum-bundle-upload-"));
/** The folder goes when the server side of the response closes, which may be just after the client has its answer. */
const foldersBackTo = (before: string[]) =>
  waitFor("the upload folder to go", async () => (uploadFolders().length === before.length ? true : undefined), { timeoutMs: 2_000 });

/** The middleware alone, with a 1 KiB limit, in front of a route that reports what it was given. */
function appWith(allowed: boolean) {
  const app = express();
  const seen: Array<{ path?: string; existed: boolean; name?: string; csrf?: string }> = [];
  app.use(bundleUpload({ path: "/releases", allowed: () => allowed, limitBytes: 1024 }));
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

describe("bundle upload", () => {
  it("streams the bundle to a temp folder for the route, under a safe name, and removes it with the response", async () => {
    const before = uploadFolders();
    const { app, seen } = appWith(true);
    const res = await request(app).post("/releases").field("_csrf", "token").attach("bundle", Buffer.alloc(100), "../../plum-1.2.3.tar");
    expect(res.status).to.equal(204);
    expect(seen[0]).to.include({ existed: true, name: "plum-1.2.3.tar", csrf: "token" });
    expect(path.dirname(path.dirname(seen[0].path!))).to.equal(tmpdir());
    await foldersBackTo(before);
    expect(existsSync(seen[0].path!)).to.equal(false);
  });

  it("refuses a bundle over the limit with 413 and keeps nothing", async () => {
    const before = uploadFolders();
    const { app, seen } = appWith(true);
    const res = await request(app).post("/releases").attach("bundle", Buffer.alloc(4096), "plum-1.2.3.tar");
    expect(res.status).to.equal(413);
    expect(res.body.error).to.equal(
      "The bundle is larger than 1 KiB, the most the console accepts. Import it on the host instead: plumctl release import FILE.",
    );
    expect(seen).to.deep.equal([]);
    await foldersBackTo(before);
  });

  it("writes nothing to disk for who may not import", async () => {
    const { app, seen } = appWith(false);
    const res = await request(app).post("/releases").attach("bundle", Buffer.alloc(100), "plum-1.2.3.tar");
    expect(res.status).to.equal(204);
    expect(seen[0]).to.include({ existed: false, path: undefined });
  });
});
