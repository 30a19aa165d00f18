import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import Handlebars from "handlebars";
import { APP_ROOT } from "../paths.ts";

export const WEB_ROOT = path.join(APP_ROOT, "web");

function templatesIn(dir: string): Array<{ name: string; file: string }> {
  const out: Array<{ name: string; file: string }> = [];
  const walk = (d: string, prefix: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(path.join(d, entry.name), `${prefix}${entry.name}/`);
      else if (entry.name.endsWith(".hbs")) out.push({ name: prefix + entry.name.slice(0, -4), file: path.join(d, entry.name) });
    }
  };
  walk(dir, "");
  return out;
}

/**
 * Server-rendered pages: Handlebars templates from web/pages, wrapped in a layout from web/layouts,
 * with partials from web/partials. Compiled once at boot; HTML-escaped by default.
 */
export function createViewEngine() {
  const hbs = Handlebars.create();
  for (const { name, file } of templatesIn(path.join(WEB_ROOT, "partials"))) hbs.registerPartial(name, readFileSync(file, "utf8"));
  hbs.registerHelper("eq", (a: unknown, b: unknown) => a === b);
  hbs.registerHelper("datetime", (d: unknown) => (d instanceof Date ? d.toISOString().replace("T", " ").slice(0, 19) + " UTC" : d ? String(d) : ""));
  hbs.registerHelper("json", (v: unknown) => JSON.stringify(v));
  const compile = (dir: string) =>
    new Map(templatesIn(path.join(WEB_ROOT, dir)).map(({ name, file }) => [name, hbs.compile(readFileSync(file, "utf8"), { strict: false })]));
  const pages = compile("pages");
  const layouts = compile("layouts");

  /** Express view engine: `res.render("console/dashboard", { layout: "console", … })`. */
  return (filePath: string, options: object, callback: (err: Error | null, html?: string) => void) => {
    try {
      const name = path.relative(path.join(WEB_ROOT, "pages"), filePath).replace(/\.hbs$/, "");
      const page = pages.get(name);
      if (!page) throw new Error(`no page template "${name}"`);
      const data = options as Record<string, unknown>;
      const body = page(data);
      const layout = layouts.get(String(data.layout ?? "console"));
      callback(null, layout ? layout({ ...data, body }) : body);
    } catch (err) {
      callback(err as Error);
    }
  };
}
