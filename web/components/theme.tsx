"use client";

import { useEffect, useState } from "react";
import { Icon } from "./icons";

type Theme = "system" | "light" | "dark";
const KEY = "ferry.theme";

/** Runs before React: sets data-theme from the saved choice, else from the OS setting. */
export const THEME_SCRIPT = `(function(){try{var t=localStorage.getItem("${KEY}");var d=t==="dark"||(t!=="light"&&matchMedia("(prefers-color-scheme: dark)").matches);document.documentElement.dataset.theme=d?"dark":"light";}catch(e){}})();`;

function apply(theme: Theme): void {
  const dark = theme === "dark" || (theme === "system" && window.matchMedia("(prefers-color-scheme: dark)").matches);
  document.documentElement.dataset.theme = dark ? "dark" : "light";
}

const NEXT: Record<Theme, Theme> = { system: "light", light: "dark", dark: "system" };
const LABEL: Record<Theme, string> = { system: "Theme: system", light: "Theme: light", dark: "Theme: dark" };

export function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>("system");
  useEffect(() => {
    const saved = localStorage.getItem(KEY);
    if (saved === "light" || saved === "dark") setTheme(saved);
  }, []);
  useEffect(() => {
    if (theme !== "system") return;
    const media = window.matchMedia("(prefers-color-scheme: dark)");
    const follow = () => apply("system");
    media.addEventListener("change", follow);
    return () => media.removeEventListener("change", follow);
  }, [theme]);
  const cycle = () => {
    const next = NEXT[theme];
    setTheme(next);
    if (next === "system") localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, next);
    apply(next);
  };
  return (
    <button type="button" className="nav-item theme-toggle" onClick={cycle} title={LABEL[theme]} aria-label={LABEL[theme]}>
      <span className="nav-icon" aria-hidden="true">
        <Icon name={theme === "dark" ? "moon" : theme === "light" ? "sun" : "system"} />
      </span>
      <span>{theme === "system" ? "System" : theme === "dark" ? "Dark" : "Light"}</span>
    </button>
  );
}
