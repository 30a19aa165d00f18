import type { Express } from "express";
import request from "supertest";

/**
 * A browser-like client of the console or the product for route tests: keeps cookies (including Secure ones, which a
 * real browser would send over HTTPS), and reads CSRF tokens from the forms it is served.
 */
export class WebClient {
  readonly cookies = new Map<string, string>();
  constructor(private readonly app: Express) {}

  /** The Cookie header this client sends (for requests built by hand, e.g. file uploads). */
  cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }

  private absorb(res: request.Response): request.Response {
    const setCookie = res.headers["set-cookie"] as unknown as string[] | undefined;
    for (const line of setCookie ?? []) {
      const [pair] = line.split(";");
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (value === "" || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  async get(path: string, accept = "text/html"): Promise<request.Response> {
    return this.absorb(await request(this.app).get(path).set("Cookie", this.cookieHeader()).set("Accept", accept).redirects(0));
  }

  /** The CSRF token of the first form on a page. */
  async csrfFrom(path: string): Promise<string> {
    const res = await this.get(path);
    const token = /name="_csrf" value="([^"]+)"/.exec(res.text)?.[1];
    if (!token) throw new Error(`no CSRF token on ${path} (status ${res.status})`);
    return token;
  }

  /** POST a form. `csrf`: a token, or "fetch" to read one from `tokenPage` first, or undefined for none. */
  async post(path: string, form: Record<string, string>, csrf?: string): Promise<request.Response> {
    const body = new URLSearchParams({ ...form, ...(csrf ? { _csrf: csrf } : {}) }).toString();
    return this.absorb(await request(this.app).post(path).set("Cookie", this.cookieHeader()).set("Accept", "text/html").type("form").send(body).redirects(0));
  }

  async signIn(username: string, password: string): Promise<request.Response> {
    const token = await this.csrfFrom("/login");
    return this.post("/login", { username, password }, token);
  }

  async changePassword(current: string, next: string): Promise<request.Response> {
    const token = await this.csrfFrom("/account/password");
    return this.post("/account/password", { currentPassword: current, newPassword: next, confirmPassword: next }, token);
  }
}
