import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ServerMessage } from "@ferry/sdk/protocol";
import type { WebSocket } from "ws";
import { AgentConnection } from "./agents/connection.ts";
import { CLAIMS_PER_PASS, Dispatcher } from "./dispatcher.ts";
import { logger } from "./logger.ts";
import { createFlowRun } from "./orchestration/create-run.ts";
import { ParamsValidator } from "./params.ts";
import { FIXTURE, fixtureDatabase } from "./test-database.ts";

/** What a dispatch pass sends, in order, across all agents (the socket is the boundary here). */
type Sent = { agent: string; message: ServerMessage };

function agentOn(sent: Sent[], agentId: string, workspaceId: string, capacity: number): AgentConnection {
  const socket = {
    OPEN: 1,
    readyState: 1,
    send: (text: string) => sent.push({ agent: agentId, message: JSON.parse(text) as ServerMessage }),
  } as unknown as WebSocket;
  return new AgentConnection(socket, agentId, workspaceId, `token-${agentId}`, agentId, ["default"], capacity);
}

describe("Dispatcher", () => {
  it("is fair across workspaces: a tenant's backlog and large agent do not hold up another tenant's run", async () => {
    const { database, close } = await fixtureDatabase("dispatch-fair-", { name: "work" });
    const { db } = database;
    const dispatcher = new Dispatcher(db, logger.child({ component: "test" }), { leaseMs: 60_000 });
    try {
      // The attacker: workspace ws-1 (the fixture) with a backlog over three passes' worth.
      const attackerDeployment = await db.deployment.findUniqueOrThrow({ where: { id: FIXTURE.deploymentId } });
      const params = new ParamsValidator();
      for (let i = 0; i < CLAIMS_PER_PASS * 3; i++) {
        await createFlowRun(db, params, { workspaceId: FIXTURE.workspaceId, deployment: attackerDeployment, parameters: {} });
      }
      // The victim: another workspace with one run waiting.
      await db.workspace.create({ data: { id: "ws-2", name: "victim", slug: "victim" } });
      await db.flow.create({ data: { id: "flow-2", workspaceId: "ws-2", name: "work" } });
      const victimDeployment = await db.deployment.create({
        data: { ...attackerDeployment, id: "dep-2", workspaceId: "ws-2", flowId: "flow-2" },
      });
      const victimRun = await createFlowRun(db, params, { workspaceId: "ws-2", deployment: victimDeployment, parameters: {} });

      const sent: Sent[] = [];
      for (const [id, workspaceId] of [
        ["attacker-agent", FIXTURE.workspaceId],
        ["victim-agent", "ws-2"],
      ] as const) {
        await db.agent.create({
          data: {
            id,
            workspaceId,
            externalId: id,
            name: id,
            tokenId: null,
            poolsJson: '["default"]',
            labelsJson: "{}",
            capacity: 1000,
            version: "test",
            status: "ONLINE",
          },
        });
      }
      // The attacker's agent joins first, so the first pass starts with its workspace.
      dispatcher.addAgent(agentOn(sent, "attacker-agent", FIXTURE.workspaceId, 1000));
      dispatcher.addAgent(agentOn(sent, "victim-agent", "ws-2", 1));

      const assigns = () => sent.filter((s) => s.message.type === "run.assign");
      const deadline = Date.now() + 30_000;
      while (assigns().length < CLAIMS_PER_PASS * 3 + 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const order = assigns();
      assert.equal(order.length, CLAIMS_PER_PASS * 3 + 1, "every run was dispatched");
      const victimAt = order.findIndex((s) => s.message.type === "run.assign" && s.message.flowRunId === victimRun.run.id);
      assert.equal(order[victimAt]?.agent, "victim-agent");
      // Before the fix the victim waited for all 192 of the attacker's claims.
      assert.ok(
        victimAt <= CLAIMS_PER_PASS,
        `the victim's run was the ${victimAt + 1}th assignment: at most ${CLAIMS_PER_PASS} of the attacker's may go first`,
      );
    } finally {
      dispatcher.stop();
      await close();
    }
  });
});
