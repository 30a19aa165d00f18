import { DEFAULT_MAX_IMPORT_ROWS, ImportRejected, readCsvRows, type CsvSource } from "./csv-import.ts";
import { authorize } from "../policies.ts";
import { actorLabel, type ProductActor, type ProductContext } from "../product-context.ts";

/** The columns of an HRIS export, as the import expects them (header names are case-insensitive). */
export const PARTICIPANT_COLUMNS = ["employee_id", "name", "email", "department", "manager", "country"] as const;
type Column = (typeof PARTICIPANT_COLUMNS)[number];

export { ImportRejected };

interface ParsedRow {
  employeeId: string;
  name: string;
  email: string;
  department: string;
  managerEmployeeId: string | null;
  country: string;
}

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,190}\.[^\s@]{2,}$/;
const BATCH = 1000;

/** Parse and check every row first (streaming, at most `maxRows`); any problem rejects the whole file. */
export async function parseParticipantsCsv(csv: CsvSource, maxRows = DEFAULT_MAX_IMPORT_ROWS): Promise<ParsedRow[]> {
  const seen = new Map<string, number>();
  return readCsvRows({
    source: csv,
    columns: PARTICIPANT_COLUMNS,
    emptyReason: "the file has a header but no participants",
    maxRows,
    row: (r, line, bad: (column: Column, reason: string) => void): ParsedRow => {
      const employeeId = r.employee_id ?? "";
      if (!employeeId) bad("employee_id", "is empty");
      else if (employeeId.length > 64) bad("employee_id", "is longer than 64 characters");
      else if (seen.has(employeeId)) bad("employee_id", `"${employeeId}" is also on line ${seen.get(employeeId)}`);
      else seen.set(employeeId, line);
      if (!r.name) bad("name", "is empty");
      if (!EMAIL.test(r.email ?? "")) bad("email", r.email ? `"${r.email}" is not an e-mail address` : "is empty");
      const country = (r.country ?? "").toUpperCase();
      if (!/^[A-Z]{2}$/.test(country)) bad("country", r.country ? `"${r.country}" is not a two-letter ISO 3166 country code` : "is empty");
      return {
        employeeId,
        name: r.name,
        email: (r.email ?? "").toLowerCase(),
        department: r.department ?? "",
        managerEmployeeId: r.manager || null,
        country,
      };
    },
  });
}

/**
 * Import participants from an HRIS export: every row is checked first and any problem imports nothing (reading
 * stops at the 100th problem, and at more than imports.maxRows rows);
 * otherwise all rows are inserted or updated (by employee id) in one transaction.
 */
export async function participantsImporter(props: {
  ctx: ProductContext;
  actor: ProductActor;
  input: { csv: CsvSource };
}): Promise<{ created: number; updated: number }> {
  const { ctx, actor } = props;
  authorize(actor, "import", "Participant");
  const rows = await parseParticipantsCsv(props.input.csv, ctx.importMaxRows);
  return ctx.sequelize.transaction(async (transaction) => {
    let created = 0;
    for (let i = 0; i < rows.length; i += BATCH) {
      const batch = rows.slice(i, i + BATCH);
      const [result] = await ctx.sequelize.query(
        `insert into participants (employee_id, name, email, department, manager_employee_id, country)
         select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
         on conflict (employee_id) do update set name = excluded.name, email = excluded.email, department = excluded.department,
           manager_employee_id = excluded.manager_employee_id, country = excluded.country, updated_at = now()
         returning (xmax = 0) as inserted`,
        {
          bind: [
            batch.map((r) => r.employeeId),
            batch.map((r) => r.name),
            batch.map((r) => r.email),
            batch.map((r) => r.department),
            batch.map((r) => r.managerEmployeeId),
            batch.map((r) => r.country),
          ],
          transaction,
        },
      );
      created += (result as Array<{ inserted: boolean }>).filter((r) => r.inserted).length;
    }
    const summary = { created, updated: rows.length - created };
    await ctx.models.events.append({ actor: actorLabel(actor), action: "participants.import", detail: summary }, transaction);
    return summary;
  });
}
