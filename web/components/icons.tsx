/** Small line icons (inline SVG: no icon font, nothing fetched). */
const PATHS: Record<string, string> = {
  runs: "M4 4l12 6-12 6z",
  deployments: "M10 2l7 4v8l-7 4-7-4V6zM3 6l7 4 7-4M10 10v8",
  flows: "M3 5h5v4H3zM12 11h5v4h-5zM8 7h2a2 2 0 012 2v2a2 2 0 002 2",
  agents: "M3 4h14v9H3zM7 17h6M10 13v4",
  tokens: "M7 11a4 4 0 110-1M10.5 10.5H17v3M14 10.5v2.5",
  signOut: "M8 4H4v12h4M12 6l4 4-4 4M16 10H8",
  bell: "M5 14V9a5 5 0 0110 0v5l2 2H3zM8 18h4",
  ferry: "M2 13l2 4h12l2-4zM5 13V8h10v5M8 8V4h4v4M1 18c2 1 4 1 6 0 2 1 4 1 6 0 2 1 4 1 6 0",
  sun: "M10 6a4 4 0 100 8 4 4 0 000-8zM10 1v2M10 17v2M1 10h2M17 10h2M3.6 3.6l1.4 1.4M15 15l1.4 1.4M3.6 16.4L5 15M15 5l1.4-1.4",
  moon: "M16 12A7 7 0 018 4a7 7 0 108 8z",
  system: "M3 4h14v9H3zM7 17h6M10 13v4M3 13L17 4",
};

export type IconName = keyof typeof PATHS;

export function Icon({ name, size = 16 }: { name: IconName; size?: number }) {
  return (
    <svg
      width={size}
      height={size}
      viewBox="0 0 20 20"
      fill="none"
      stroke="currentColor"
      strokeWidth={1.6}
      strokeLinecap="round"
      strokeLinejoin="round"
      aria-hidden="true"
      className="icon"
    >
      <path d={PATHS[name]} />
    </svg>
  );
}
