import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { CookieOptions, NextFunction, Request, Response } from "express";
import { Op } from "sequelize";
import { HttpError } from "../http-errors.ts";
import type { AuthContext } from "./auth-context.ts";
import type { AuthSession, AuthUser } from "./auth-models.ts";
import { sessionIdOf } from "./session-opener.ts";

/** Cookie names: the console's and the product's differ, since browsers share cookies across ports of a host. */
export interface AuthCookies {
  session: string;
  csrf: string;
}
export const OPS_COOKIES: AuthCookies = { session: "plum_ops_session", csrf: "plum_ops_csrf" };
export const PRODUCT_COOKIES: AuthCookies = { session: "plum_session", csrf: "plum_csrf" };

export interface Actor {
  id: number;
  username: string;
  role: string;
}

/** What a signed-in request carries (res.locals). */
export interface SignedIn {
  user: AuthUser;
  session: AuthSession;
  actor: Actor;
}

export function signedIn(res: Response): SignedIn | undefined {
  return res.locals.signedIn as SignedIn | undefined;
}

export function cookieOptions(secure: boolean, maxAgeMs?: number): CookieOptions {
  return { httpOnly: true, secure, sameSite: "strict", path: "/", ...(maxAgeMs ? { maxAge: maxAgeMs } : {}) };
}

/**
 * What a form posted from a session that has since ended is told (its user signed out elsewhere, the session
 * expired, or an admin disabled the account or closed its sessions): the form's token was that session's.
 */
export const SESSION_ENDED = "Your session has ended (you were signed out, it expired, or an admin disabled your account): sign in again.";

/**
 * Load the session named by the cookie (unexpired, user not disabled) into res.locals.signedIn; a cookie that
 * names no live session marks the request `sessionEnded`, so that its form is refused with why.
 */
export function sessionLoader(ctx: AuthContext, cookies: AuthCookies) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const token = req.cookies?.[cookies.session];
    if (typeof token === "string" && token.length > 0) {
      const session = await ctx.models.Session.findOne({ where: { id: sessionIdOf(token), expiresAt: { [Op.gt]: new Date() } } });
      const user = session && (await ctx.models.User.findByPk(session.userId));
      if (session && user && !user.disabledAt) {
        res.locals.signedIn = { user, session, actor: { id: user.id, username: user.username, role: user.role } } satisfies SignedIn;
      } else {
        res.locals.sessionEnded = true;
      }
    }
    next();
  };
}

function hmac(key: Buffer, value: string): string {
  return createHmac("sha256", key).update(value).digest("base64url");
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * CSRF protection for every state-changing request. Signed in: the token is derived from the session's own
 * secret. Signed out (the sign-in form): from a random cookie. Either way an HMAC under the appliance's
 * session key, so a token cannot be forged without the server's secret. A wrong token from a request whose
 * session cookie names an ended session is answered 401 SESSION_ENDED, the cookie cleared.
 */
export function csrfProtection(sessionKey: Buffer, secureCookies: boolean, cookies: AuthCookies) {
  return (req: Request, res: Response, next: NextFunction) => {
    const s = signedIn(res);
    let basis: string;
    if (s) {
      basis = `session:${s.session.csrfSecret}`;
    } else {
      let anon = req.cookies?.[cookies.csrf];
      if (typeof anon !== "string" || anon.length < 16) {
        anon = randomBytes(24).toString("base64url");
        res.cookie(cookies.csrf, anon, cookieOptions(secureCookies));
        req.cookies[cookies.csrf] = anon;
      }
      basis = `anon:${anon}`;
    }
    const expected = hmac(sessionKey, basis);
    res.locals.csrfToken = expected;
    if (SAFE_METHODS.has(req.method)) return next();
    // A file upload's body is read only after this check, so its form sends the token in the action URL.
    const inQuery = req.is("multipart/form-data") && typeof req.query._csrf === "string" ? req.query._csrf : undefined;
    const given = (req.body && typeof req.body._csrf === "string" ? req.body._csrf : undefined) ?? req.get("x-csrf-token") ?? inQuery;
    if (!given || !sameToken(given, expected)) {
      // Signed out since the form was served: its token was the ended session's, so say that rather than "expired form".
      if (res.locals.sessionEnded && given) {
        res.clearCookie(cookies.session, cookieOptions(secureCookies));
        return next(new HttpError(401, SESSION_ENDED));
      }
      return next(new HttpError(403, "This form has expired or did not come from this site (missing or wrong CSRF token). Reload the page and try again."));
    }
    next();
  };
}

/** Pages past this point need a signed-in user whose one-time password has been replaced. */
export function requireSignedIn(req: Request, res: Response, next: NextFunction) {
  const s = signedIn(res);
  if (!s) {
    if (req.method === "GET") return res.redirect(303, `/login?next=${encodeURIComponent(req.originalUrl)}`);
    return next(new HttpError(401, "Sign in first."));
  }
  if (s.user.mustChangePassword && !req.path.startsWith("/account/password") && req.path !== "/logout") {
    if (req.method === "GET") return res.redirect(303, "/account/password");
    return next(new HttpError(403, "Change your one-time password before doing anything else."));
  }
  next();
}
