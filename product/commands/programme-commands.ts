import { UniqueConstraintError, ValidationError } from "sequelize";
import { BadRequestError, HttpError } from "../../lib/http/http-errors.ts";
import { PROGRAMME_KINDS, type Programme, type ProgrammeKind } from "../models/programme.ts";
import { authorize } from "../policies.ts";
import { actorLabel, type ProductActor, type ProductContext } from "../product-context.ts";

export interface ProgrammeInput {
  name: string;
  kind: string;
  description?: string;
  currency?: string;
  status?: "active" | "archived";
}

function check(input: Partial<ProgrammeInput>): void {
  const fields: Record<string, string> = {};
  if (input.name !== undefined && (input.name.trim().length < 2 || input.name.length > 120)) fields.name = "2 to 120 characters";
  if (input.kind !== undefined && !(PROGRAMME_KINDS as readonly string[]).includes(input.kind)) fields.kind = `one of ${PROGRAMME_KINDS.join(", ")}`;
  if (input.currency !== undefined && !/^[A-Z]{3}$/.test(input.currency)) fields.currency = "a three-letter ISO 4217 code, e.g. EUR";
  if (input.status !== undefined && !["active", "archived"].includes(input.status)) fields.status = "active or archived";
  if (Object.keys(fields).length > 0) throw new BadRequestError("The programme was not saved.", fields);
}

function translate(err: unknown): never {
  if (err instanceof UniqueConstraintError) throw new BadRequestError("The programme was not saved.", { name: "another programme has this name" });
  if (err instanceof ValidationError)
    throw new BadRequestError("The programme was not saved.", Object.fromEntries(err.errors.map((e) => [e.path ?? "input", e.message])));
  throw err;
}

export async function programmeCreator(props: { ctx: ProductContext; actor: ProductActor; input: ProgrammeInput }): Promise<Programme> {
  const { ctx, actor, input } = props;
  authorize(actor, "create", "Programme");
  check(input);
  try {
    return await ctx.sequelize.transaction(async (transaction) => {
      const programme = await ctx.models.Programme.create(
        { name: input.name.trim(), kind: input.kind as ProgrammeKind, description: input.description ?? "", currency: input.currency ?? "EUR" },
        { transaction },
      );
      await ctx.models.events.append(
        { actor: actorLabel(actor), action: "programme.create", target: `programme:${programme.id}`, detail: { kind: programme.kind } },
        transaction,
      );
      return programme;
    });
  } catch (err) {
    translate(err);
  }
}

export async function programmeUpdater(props: {
  ctx: ProductContext;
  actor: ProductActor;
  input: { programmeId: number } & Partial<ProgrammeInput>;
}): Promise<Programme> {
  const { ctx, actor, input } = props;
  authorize(actor, "update", "Programme");
  check(input);
  const programme = await ctx.models.Programme.findByPk(input.programmeId);
  if (!programme) throw new HttpError(404, `There is no programme with id ${input.programmeId}.`);
  const { programmeId: _id, ...changes } = input;
  try {
    await ctx.sequelize.transaction(async (transaction) => {
      await programme.update(
        { ...changes, kind: (changes.kind ?? programme.kind) as ProgrammeKind, name: changes.name?.trim() ?? programme.name },
        { transaction },
      );
      await ctx.models.events.append(
        { actor: actorLabel(actor), action: "programme.update", target: `programme:${programme.id}`, detail: changes },
        transaction,
      );
    });
  } catch (err) {
    translate(err);
  }
  return programme;
}
