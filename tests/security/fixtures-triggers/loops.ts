/** Flows that would start each other forever through triggers, if nothing bounded the chains. */
import { emitEvent, flow, task } from "@ferry/sdk";

export const ping = flow({ name: "ping" }, async () => "ping");
export const pong = flow({ name: "pong" }, async () => "pong");

/** Publishes the event its own trigger listens to: each run would start the next. */
const shout = task({ name: "shout" }, async () => {
  emitEvent("echo.again", { at: Date.now() });
  return 1;
});
export const echo = flow({ name: "echo" }, async () => shout());

/** A ring of four deployments: a chain deeper than the limit goes round it. */
export const hop1 = flow({ name: "hop1" }, async () => 1);
export const hop2 = flow({ name: "hop2" }, async () => 2);
export const hop3 = flow({ name: "hop3" }, async () => 3);
export const hop4 = flow({ name: "hop4" }, async () => 4);

/** Started by a webhook in a pool no agent serves (its runs wait, they cost nothing). */
export const sink = flow({ name: "sink" }, async () => 0);
