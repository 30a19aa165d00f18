import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { RequestHandler, Response } from "express";
import multer from "multer";
import { HttpError } from "../../../lib/http/http-errors.ts";

/** Bundles are a few hundred MiB; the limit leaves room without letting one upload fill the temp disk. */
export const BUNDLE_UPLOAD_LIMIT_BYTES = 2 * 1024 ** 3;
/** The form field of the file input. */
export const BUNDLE_FIELD = "bundle";

/** The uploaded file keeps its own name (refusals name it), made safe to use as one path segment. */
function safeName(original: string): string {
  const name = path
    .basename(original)
    .replace(/[^A-Za-z0-9._-]/g, "_")
    .replace(/^[.-]+/, "")
    .slice(-100);
  return name || "bundle.tar";
}

function describeLimit(bytes: number): string {
  const [unit, size] = bytes >= 1024 ** 3 ? ["GiB", 1024 ** 3] : bytes >= 1024 ** 2 ? ["MiB", 1024 ** 2] : ["KiB", 1024];
  return `${Math.round((bytes / size) * 10) / 10} ${unit}`;
}

/**
 * A release bundle uploaded to the console, streamed to a fresh folder under the OS temp dir (req.file). It is
 * parsed before the CSRF check, which then reads the form's _csrf field, so only a signed-in user allowed to
 * import (`allowed`) gets to write to disk at all. The folder goes when the response ends, whatever happened.
 */
export function bundleUpload(opts: { path: string; allowed: (res: Response) => boolean; limitBytes?: number }): RequestHandler {
  const limit = opts.limitBytes ?? BUNDLE_UPLOAD_LIMIT_BYTES;
  return (req, res, next) => {
    if (req.method !== "POST" || req.path !== opts.path || !req.is("multipart/form-data") || !opts.allowed(res)) return next();
    let dir: string | undefined;
    res.once("close", () => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });
    const storage = multer.diskStorage({
      destination: (_req, _file, cb) => {
        try {
          dir ??= mkdtempSync(path.join(tmpdir(), "plum-bundle-upload-"));
          cb(null, dir);
        } catch (err) {
          cb(err as Error, "");
        }
      },
      filename: (_req, file, cb) => cb(null, safeName(file.originalname)),
    });
    const parse = multer({ storage, limits: { fileSize: limit, files: 1, fields: 5, fieldSize: 1024, parts: 8 } }).single(BUNDLE_FIELD);
    parse(req, res, (err: unknown) => {
      if (!(err instanceof multer.MulterError)) return next(err);
      if (err.code === "LIMIT_FILE_SIZE")
        return next(
          new HttpError(
            413,
            `The bundle is larger than ${describeLimit(limit)}, the most the console accepts. Import it on the host instead: plumctl release import FILE.`,
          ),
        );
      next(new HttpError(400, `The upload was not understood (${err.message}): send one plum-X.Y.Z.tar in the field "${BUNDLE_FIELD}".`));
    });
  };
}
