import { Gauge, type Registry } from "prom-client";
import type { BackupContext } from "../backup-context.ts";

/** Backup health for Prometheus, read from the catalogue and the evidence log at each scrape. */
export function backupMetrics(registry: Registry, ctx: BackupContext): void {
  const seconds = (d: Date | undefined | null) => (d ? d.getTime() / 1000 : 0);
  const latest = async (kind: "check" | "drill") => (await ctx.evidence.list({ kind, limit: 1 }))[0];
  new Gauge({
    name: "plum_backup_last_success_timestamp_seconds",
    help: "When the newest succeeded backup set finished (0: none)",
    registers: [registry],
    async collect() {
      const set = await ctx.sets.findOne({ where: { status: "succeeded" }, order: [["finishedAt", "DESC"]] });
      this.set(seconds(set?.finishedAt));
    },
  });
  new Gauge({
    name: "plum_backup_copy_lag_seconds",
    help: "Age of the oldest succeeded set not yet copied to the secondary (0: all copied or no secondary)",
    registers: [registry],
    async collect() {
      if (!ctx.repos.secondary) return this.set(0);
      const set = await ctx.sets.findOne({ where: { status: "succeeded", copiedAt: null }, order: [["startedAt", "ASC"]] });
      this.set(set?.finishedAt ? (Date.now() - set.finishedAt.getTime()) / 1000 : 0);
    },
  });
  new Gauge({
    name: "plum_backup_last_check_passed",
    help: "1 when the last repository integrity check passed, 0 when it failed, -1 when none ran",
    registers: [registry],
    async collect() {
      const check = await latest("check");
      this.set(check ? (check.outcome === "success" ? 1 : 0) : -1);
    },
  });
  new Gauge({
    name: "plum_drill_last_passed",
    help: "1 when the last restore drill passed, 0 when it failed, -1 when none ran",
    registers: [registry],
    async collect() {
      const drill = await latest("drill");
      this.set(drill ? (drill.outcome === "success" ? 1 : 0) : -1);
    },
  });
  new Gauge({
    name: "plum_drill_age_seconds",
    help: "Seconds since the last restore drill (-1: none)",
    registers: [registry],
    async collect() {
      const drill = await latest("drill");
      this.set(drill ? (Date.now() - drill.at.getTime()) / 1000 : -1);
    },
  });
}
