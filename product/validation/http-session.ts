/** A minimal browser for validation suites: keeps cookies, reads CSRF tokens from forms, never follows redirects. */
export class HttpSession {
  private readonly cookies = new Map<string, string>();
  constructor(private readonly baseUrl: string) {}

  private absorb(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const eq = pair.indexOf("=");
      const value = pair.slice(eq + 1);
      if (value === "" || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(pair.slice(0, eq));
      else this.cookies.set(pair.slice(0, eq), value);
    }
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "), accept: "text/html", ...extra };
  }

  async get(path: string): Promise<{ status: number; location: string | null; text: string }> {
    const res = await fetch(new URL(path, this.baseUrl), { headers: this.headers(), redirect: "manual", signal: AbortSignal.timeout(10_000) });
    this.absorb(res);
    return { status: res.status, location: res.headers.get("location"), text: await res.text() };
  }

  /** POST a form with the CSRF token of the page at `tokenFrom`. */
  async postForm(path: string, form: Record<string, string>, tokenFrom: string): Promise<{ status: number; location: string | null; text: string }> {
    const page = await this.get(tokenFrom);
    const token = /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? "";
    const res = await fetch(new URL(path, this.baseUrl), {
      method: "POST",
      headers: this.headers({ "content-type": "application/x-www-form-urlencoded" }),
      body: new URLSearchParams({ ...form, _csrf: token }).toString(),
      redirect: "manual",
      signal: AbortSignal.timeout(10_000),
    });
    this.absorb(res);
    return { status: res.status, location: res.headers.get("location"), text: await res.text() };
  }
}
