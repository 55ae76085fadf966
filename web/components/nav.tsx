"use client";

import Link from "next/link";
import { usePathname } from "next/navigation";
import { useSession } from "@/lib/session";
import { Icon, type IconName } from "./icons";
import { ThemeToggle } from "./theme";

const LINKS: { href: string; label: string; icon: IconName }[] = [
  { href: "/runs", label: "Runs", icon: "runs" },
  { href: "/deployments", label: "Deployments", icon: "deployments" },
  { href: "/flows", label: "Flows", icon: "flows" },
  { href: "/agents", label: "Agents", icon: "agents" },
  { href: "/notifications", label: "Alerts", icon: "bell" },
];

/** The sidebar: sections, theme, who is signed in. */
export function Nav() {
  const pathname = usePathname();
  const { me, can, signOut } = useSession();
  if (!me) return null;
  const links = can("admin") ? [...LINKS, { href: "/tokens", label: "API tokens", icon: "tokens" as const }] : LINKS;
  const active = (href: string) => pathname === href || pathname.startsWith(`${href}/`) || (href === "/runs" && pathname === "/");
  return (
    <aside className="sidebar">
      <Link href="/runs" className="brand">
        <span className="brand-mark" aria-hidden="true">
          <Icon name="ferry" size={18} />
        </span>
        Ferry
      </Link>
      <nav aria-label="Sections">
        {links.map((l) => (
          <Link key={l.href} href={l.href} className={`nav-item${active(l.href) ? " active" : ""}`}>
            <span className="nav-icon" aria-hidden="true">
              <Icon name={l.icon} />
            </span>
            {l.label}
          </Link>
        ))}
      </nav>
      <div className="sidebar-foot">
        <ThemeToggle />
        <div className="whoami" title={`scopes: ${me.scopes.join(", ")}`}>
          <span className="muted small">Signed in with</span>
          <strong>{me.tokenName ?? "a token"}</strong>
          <span className="muted small">{me.scopes.join(" · ")}</span>
        </div>
        <button type="button" className="nav-item" onClick={() => void signOut()}>
          <span className="nav-icon" aria-hidden="true">
            <Icon name="signOut" />
          </span>
          Sign out
        </button>
      </div>
    </aside>
  );
}
