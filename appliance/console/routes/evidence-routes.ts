import type { Router } from "express";
import { z } from "zod";
import { EVIDENCE_FORMATS, evidenceExporter, evidencePeriod } from "../../../backup/evidence/evidence-exporter.ts";
import { zipBundle } from "../../../backup/evidence/evidence-bundle.ts";
import { fingerprintAdvice } from "../../../backup/evidence/evidence-pin.ts";
import { evidenceReportBuilder, type EvidenceSource } from "../../../backup/evidence/evidence-report.ts";
import type { Secrets } from "../../../lib/secrets.ts";
import { signedIn } from "../../../lib/http/auth/session-auth.ts";
import { BadRequestError } from "../../../lib/http/http-errors.ts";
import type { ConsoleContext } from "../console-context.ts";
import { authorize } from "../policies.ts";

const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "a date as YYYY-MM-DD");
const periodQuery = z.object({ from: day.optional(), to: day.optional(), format: z.enum(EVIDENCE_FORMATS).default("pdf") });

/** The period asked for, by default the last 30 days up to today (UTC). */
function periodFrom(query: unknown) {
  const parsed = periodQuery.safeParse(query);
  if (!parsed.success)
    throw new BadRequestError(`Choose a period and a format: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}.`);
  const today = new Date().toISOString().slice(0, 10);
  const form = {
    from: parsed.data.from ?? new Date(Date.now() - 29 * 86400_000).toISOString().slice(0, 10),
    to: parsed.data.to ?? today,
    format: parsed.data.format,
  };
  try {
    return { form, ...evidencePeriod(form.from, form.to) };
  } catch (err) {
    throw new BadRequestError(`${(err as Error).message}.`);
  }
}

/** The appliance key that signs evidence: the one the agent read at start, never re-read (or re-made) per request. */
export type EvidenceSigningKey = Pick<Secrets, "signingPrivateKeyPem" | "signingPublicKeyPem">;

/** The evidence page: the controls of a period, and its signed export (read-only: exporting changes nothing but the audit log). */
export function evidenceRoutes(router: Router, ctx: ConsoleContext, source: EvidenceSource, key: EvidenceSigningKey) {
  router.get("/evidence", async (req, res) => {
    authorize(signedIn(res)!.actor, "read", "Evidence");
    const { form, from, to } = periodFrom(req.query);
    const report = await evidenceReportBuilder({ source, from, to, publicKeyPem: key.signingPublicKeyPem });
    res.render("console/evidence", {
      title: "Backup evidence",
      form,
      formats: EVIDENCE_FORMATS.map((f) => ({ value: f, selected: f === form.format })),
      asOf: new Date(report.period.controlsAsOf),
      fingerprint: report.appliance.publicKeyFingerprint,
      fingerprintAdvice: fingerprintAdvice(report.appliance.publicKeyFingerprint),
      controls: report.controls.map((c) => ({
        ...c,
        passed: c.result === "pass",
        iso27001: c.frameworks.iso27001.join(", "),
        soc2: c.frameworks.soc2.join(", "),
      })),
      records: report.records.length,
    });
  });

  router.get("/evidence/export", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "export", "Evidence");
    const { form, from, to } = periodFrom(req.query);
    const { signingPrivateKeyPem, signingPublicKeyPem } = key;
    const out = await evidenceExporter({ ctx: source, from, to, format: form.format, signingKeyPem: signingPrivateKeyPem, publicKeyPem: signingPublicKeyPem });
    await ctx.audit.append({
      actor: `user:${actor.username}`,
      action: "evidence.export",
      detail: { from: from.toISOString(), to: to.toISOString(), format: form.format },
    });
    if (!out.signature) {
      res.type("application/json").attachment(out.fileName).send(out.body);
      return;
    }
    // A CSV or PDF and its detached signature, in one download.
    res
      .type("application/zip")
      .attachment(`${out.fileName}.zip`)
      .send(
        zipBundle([
          { name: out.fileName, bytes: out.body },
          { name: `${out.fileName}.sig`, bytes: out.signature },
        ]),
      );
  });
}
