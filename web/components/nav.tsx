"use client";

import Link from "next/link";
import { usePathname } from "next/navigation";
import { useSession } from "@/lib/session";

const LINKS = [
  { href: "/", label: "Runs" },
  { href: "/deployments", label: "Deployments" },
  { href: "/agents", label: "Agents" },
];

export function Nav() {
  const pathname = usePathname();
  const { api, signOut } = useSession();
  const active = (href: string) => (href === "/" ? pathname === "/" || pathname.startsWith("/runs") : pathname.startsWith(href));
  return (
    <header className="topbar">
      <Link href="/" className="brand">
        Ferry
      </Link>
      {api ? (
        <>
          <nav>
            {LINKS.map((l) => (
              <Link key={l.href} href={l.href} className={active(l.href) ? "active" : undefined}>
                {l.label}
              </Link>
            ))}
          </nav>
          <button type="button" className="link-button" onClick={signOut}>
            Sign out
          </button>
        </>
      ) : null}
    </header>
  );
}
