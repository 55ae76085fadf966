import type { Metadata } from "next";
import type { ReactNode } from "react";
import { Nav } from "@/components/nav";
import { THEME_SCRIPT } from "@/components/theme";
import { SessionProvider } from "@/lib/session";
import "./globals.css";

export const metadata: Metadata = {
  title: { default: "Ferry", template: "%s · Ferry" },
  description: "Monitor Ferry flow runs, deployments and agents",
};

// The control plane's URL is read when a page is served (not baked in at build time), so one
// build serves any installation: `FERRY_API_URL=https://ferry.example.com next start`.
export const dynamic = "force-dynamic";

function apiUrl(): string {
  return (process.env.FERRY_API_URL || process.env.NEXT_PUBLIC_FERRY_API_URL || "http://127.0.0.1:4200").replace(/\/+$/, "");
}

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en" suppressHydrationWarning>
      <head>
        {/* Applies the saved theme before the first paint (no flash of the wrong theme). */}
        {/* biome-ignore lint/security/noDangerouslySetInnerHtml: a constant script of ours */}
        <script dangerouslySetInnerHTML={{ __html: THEME_SCRIPT }} />
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
