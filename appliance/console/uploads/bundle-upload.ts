import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import type { NextFunction, Request, RequestHandler, Response } from "express";
import multer from "multer";
import { HttpError } from "../../../lib/http/http-errors.ts";
import { diskNeeded } from "../../releases/bundle-importer.ts";

/** Bundles are a few hundred MiB; the limit leaves room without letting one upload fill the disk. */
export const BUNDLE_UPLOAD_LIMIT_BYTES = 2 * 1024 ** 3;
/** The form field of the file input. */
export const BUNDLE_FIELD = "bundle";
/** What a multipart body may hold besides the file: its boundaries, headers and the few small fields. */
const FORM_OVERHEAD_BYTES = 64 * 1024;

/** The uploaded file keeps its own name (refusals name it), made safe to use as one path segment. */
function safeName(original: string): string {
  const name = path
    .basename(original)
    .replace(/[^A-Za-z0-9._-]/g, "_")
    .replace(/^[.-]+/, "")
    .slice(-100);
  return name || "bundle.tar";
}

function describeSize(bytes: number): string {
  const [unit, size] = bytes >= 1024 ** 3 ? ["GiB", 1024 ** 3] : bytes >= 1024 ** 2 ? ["MiB", 1024 ** 2] : ["KiB", 1024];
  return `${Math.round((bytes / size) * 10) / 10} ${unit}`;
}

export interface BundleUploadOptions {
  path: string;
  /** Whether the signed-in user may import (anyone else's POST goes on as a plain form, never read). */
  allowed: (res: Response) => string | undefined;
  /** The console's CSRF check, run on the fields that come before the file in the form. */
  csrf: (req: Request, res: Response, next: NextFunction) => void;
  /** Where uploads are staged (under PLUM_HOME, beside the releases they become), and its free bytes. */
  staging: { dir: string; freeBytes(dir: string): number };
  limitBytes?: number;
}

/**
 * A release bundle uploaded to the console, streamed to `staging.dir` (req.file), one upload at a time. Before
 * a byte is stored: the user is signed in and may import, no other upload or import of one is under way, the
 * declared length fits the limit and the disk (the bundle and room to import it), and the form's _csrf field,
 * which the page sends before the file, is right. The file goes when the response ends, whatever happened.
 */
export function bundleUpload(opts: BundleUploadOptions): RequestHandler {
  const limit = opts.limitBytes ?? BUNDLE_UPLOAD_LIMIT_BYTES;
  let busy: { actor: string; since: Date } | undefined;
  return (req, res, next) => {
    if (req.method !== "POST" || req.path !== opts.path || !req.is("multipart/form-data")) return next();
    const actor = opts.allowed(res);
    if (!actor) return next();
    let settled = false;
    // A refusal closes the connection: the rest of the body is never read, let alone written.
    const refuse = (err: unknown) => {
      if (settled) return;
      settled = true;
      res.set("connection", "close");
      next(err);
    };
    if (busy) {
      return refuse(
        new HttpError(
          409,
          `Another bundle upload is under way (by ${busy.actor}, since ${busy.since.toISOString().slice(11, 19)} UTC): the console takes one at a time. Wait for it to finish, then upload again.`,
        ),
      );
    }
    const declared = Number(req.get("content-length"));
    if (!req.get("content-length") || !Number.isSafeInteger(declared))
      return refuse(new HttpError(411, "The upload did not say its length (Content-Length): send the bundle from the Releases page's form."));
    if (declared > limit + FORM_OVERHEAD_BYTES)
      return refuse(
        new HttpError(
          413,
          `The bundle is larger than ${describeSize(limit)}, the most the console accepts. Import it on the host instead: plumctl release import FILE.`,
        ),
      );
    const dir = opts.staging.dir;
    try {
      // One upload at a time: whatever is here was left by an agent that stopped mid-upload.
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      return refuse(err);
    }
    const free = opts.staging.freeBytes(dir);
    const needed = declared + diskNeeded(declared);
    if (free < needed) {
      rmSync(dir, { recursive: true, force: true });
      return refuse(
        new HttpError(
          507,
          `${describeSize(free)} free on ${path.dirname(dir)}, ${describeSize(needed)} needed to take this ${describeSize(declared)} upload and import it (the bundle, 3 × its size to unpack, 200 MiB to work). Free space there, or import on the host: plumctl release import FILE.`,
        ),
      );
    }
    busy = { actor, since: new Date() };
    res.once("close", () => {
      rmSync(dir, { recursive: true, force: true });
      busy = undefined;
    });
    const storage = multer.diskStorage({
      // Called when the file part starts: the fields before it (the form's _csrf) have been read, the file not.
      destination: (fileReq, _file, cb) =>
        opts.csrf(fileReq as Request, res, (err?: unknown) => {
          if (err) {
            refuse(err);
            return cb(err as Error, "");
          }
          cb(null, dir);
        }),
      filename: (_req, file, cb) => cb(null, safeName(file.originalname)),
    });
    const parse = multer({ storage, limits: { fileSize: limit, files: 1, fields: 5, fieldSize: 1024, parts: 8 } }).single(BUNDLE_FIELD);
    parse(req, res, (err: unknown) => {
      if (!err) {
        if (settled) return;
        settled = true;
        return next();
      }
      if (!(err instanceof multer.MulterError)) return refuse(err);
      if (err.code === "LIMIT_FILE_SIZE")
        return refuse(
          new HttpError(
            413,
            `The bundle is larger than ${describeSize(limit)}, the most the console accepts. Import it on the host instead: plumctl release import FILE.`,
          ),
        );
      refuse(new HttpError(400, `The upload was not understood (${err.message}): send one plum-X.Y.Z.tar in the field "${BUNDLE_FIELD}".`));
    });
  };
}
