import { type NextRequest, NextResponse } from "next/server";
import { apiUrl, contentSecurityPolicy, HARDENING_HEADERS } from "@/lib/security-headers";

/** Every page gets a fresh script nonce and the security headers (see lib/security-headers.ts). */
export function proxy(request: NextRequest) {
  const nonce = Buffer.from(crypto.randomUUID()).toString("base64");
  const policy = contentSecurityPolicy(nonce, apiUrl());
  // Next reads the nonce from the request's policy and puts it on its own scripts; the layout
  // reads `x-nonce` for ours.
  const requestHeaders = new Headers(request.headers);
  requestHeaders.set("x-nonce", nonce);
  requestHeaders.set("Content-Security-Policy", policy);
  const response = NextResponse.next({ request: { headers: requestHeaders } });
  response.headers.set("Content-Security-Policy", policy);
  for (const [name, value] of Object.entries(HARDENING_HEADERS)) response.headers.set(name, value);
  return response;
}

export const config = {
  // Pages only: static chunks and images need no policy of their own.
  matcher: [{ source: "/((?!_next/static|_next/image|favicon.ico).*)" }],
};
