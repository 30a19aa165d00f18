/** An error that becomes an HTTP answer with a message the user can act on. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export class ForbiddenError extends HttpError {
  constructor(message: string) {
    super(403, message);
  }
}

export class BadRequestError extends HttpError {
  constructor(
    message: string,
    readonly fields: Record<string, string> = {},
  ) {
    super(400, message, { fields });
  }
}
