import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { RequestHandler } from "express";
import multer from "multer";
import { signedIn } from "../../lib/http/auth/session-auth.ts";
import { HttpError } from "../../lib/http/http-errors.ts";
import { authorize, type Action, type Subject } from "../policies.ts";

/** The largest CSV file an import takes; the row cap (imports.maxRows) is usually reached well before. */
export const CSV_UPLOAD_LIMIT_BYTES = 50 * 1024 * 1024;
/** The form field of the file input. */
export const CSV_FIELD = "file";

/**
 * One CSV file of an import form, streamed to a fresh folder under the OS temp dir (req.file.path). Mounted on
 * the import routes only, after the session, the CSRF check (the form sends its token in the action URL, so it
 * is checked before any byte of the body is read) and the caller's permission: nobody else makes the server read
 * a multipart body. The folder goes when the response ends, whatever happened.
 */
export function csvUpload(permission: { action: Action; subject: Subject }, limitBytes = CSV_UPLOAD_LIMIT_BYTES): RequestHandler {
  return (req, res, next) => {
    const s = signedIn(res);
    if (!s) return next(new HttpError(401, "Sign in first."));
    authorize(s.actor, permission.action, permission.subject);
    if (!req.is("multipart/form-data")) return next();
    let dir: string | undefined;
    res.once("close", () => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });
    const storage = multer.diskStorage({
      destination: (_req, _file, cb) => {
        try {
          dir ??= mkdtempSync(path.join(tmpdir(), "plum-csv-upload-"));
          cb(null, dir);
        } catch (err) {
          cb(err as Error, "");
        }
      },
      filename: (_req, _file, cb) => cb(null, "upload.csv"),
    });
    const parse = multer({ storage, limits: { fileSize: limitBytes, files: 1, fields: 5, fieldSize: 1024, parts: 8 } }).single(CSV_FIELD);
    parse(req, res, (err: unknown) => {
      if (!(err instanceof multer.MulterError)) return next(err);
      if (err.code === "LIMIT_FILE_SIZE")
        return next(
          new HttpError(413, `The file is larger than ${Math.round(limitBytes / 1024 ** 2)} MiB, the most one import takes. Split it and import each part.`),
        );
      next(new HttpError(400, `The upload was not understood (${err.message}): send one CSV file in the field "${CSV_FIELD}".`));
    });
  };
}
