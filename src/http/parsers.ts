/** Body parsers that insist on the declared content type: a wrong one is 415, bad JSON is 400. */
import { AppError, UnsupportedMediaTypeError } from "../errors.ts";

export async function jsonBody({ request }: { request: Request }): Promise<unknown> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^application\/([\w.+-]+\+)?json\b/i.test(type)) {
    throw new UnsupportedMediaTypeError("Send the body as application/json.");
  }
  try {
    return await request.json();
  } catch {
    throw new AppError("bad_request", "The request body is not valid JSON.");
  }
}

export async function multipartBody({ request }: { request: Request }): Promise<unknown> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^multipart\/form-data\b/i.test(type)) {
    throw new UnsupportedMediaTypeError("Send the photo as multipart/form-data in field `file`.");
  }
  const form = await request.formData().catch(() => {
    throw new AppError("bad_request", "The multipart body could not be parsed.");
  });
  return Object.fromEntries(form.entries());
}

/** JSON or an HTML form (OAuth2 clients send forms): anything else is 415. */
export async function jsonOrFormBody({ request }: { request: Request }): Promise<unknown> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^application\/x-www-form-urlencoded\b/i.test(type)) return jsonBody({ request });
  const form = new URLSearchParams(await request.text());
  return Object.fromEntries(form.entries());
}
