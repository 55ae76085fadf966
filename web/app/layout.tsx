import type { Metadata } from "next";
import { headers } from "next/headers";
import type { ReactNode } from "react";
import { Nav } from "@/components/nav";
import { THEME_SCRIPT } from "@/components/theme";
import { apiUrl } from "@/lib/security-headers";
import { SessionProvider } from "@/lib/session";
import "./globals.css";

export const metadata: Metadata = {
  title: { default: "Ferry", template: "%s · Ferry" },
  description: "Monitor Ferry flow runs, deployments and agents",
};

// The control plane's URL is read when a page is served (not baked in at build time), so one
// build serves any installation: `FERRY_API_URL=https://ferry.example.com next start`.
export const dynamic = "force-dynamic";

export default async function RootLayout({ children }: { children: ReactNode }) {
  // Set by proxy.ts for this request: the Content-Security-Policy lets only scripts with it run.
  const nonce = (await headers()).get("x-nonce") ?? undefined;
  return (
    <html lang="en" suppressHydrationWarning>
      <head>
        {/* Applies the saved theme before the first paint (no flash of the wrong theme). */}
        {/* biome-ignore lint/security/noDangerouslySetInnerHtml: a constant script of ours */}
        <script nonce={nonce} dangerouslySetInnerHTML={{ __html: THEME_SCRIPT }} />
      </head>
      <body>
        <SessionProvider apiUrl={apiUrl()}>
          <div className="shell">
            <Nav />
            <main className="main">{children}</main>
          </div>
        </SessionProvider>
      </body>
    </html>
  );
}
