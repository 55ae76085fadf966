import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { assembleGraph, EXPANDED_GROUP_CAP, type GraphEdge, groupState, type RunGraph } from "./graph.ts";

// The run graph as the web app draws it, assembled from aggregate rows (no database).

type Input = Parameters<typeof assembleGraph>[0];
type Task = Input["tasks"][number];

const T0 = new Date("2026-11-26T10:00:00.000Z");
const T1 = new Date("2026-11-26T10:00:05.000Z");

function task(id: string, taskKey: string, stateType = "COMPLETED", extra: Partial<Task> = {}): Task {
  const name = stateType.charAt(0) + stateType.slice(1).toLowerCase();
  return {
    id,
    taskKey,
    name: `${taskKey}-${id}`,
    stateType,
    stateName: name,
    childFlowRunId: null,
    startTime: T0,
    endTime: stateType === "COMPLETED" ? T1 : null,
    ...extra,
  };
}

function edge(upstreamId: string, downstreamId: string, upKey: string, downKey: string) {
  return { upstreamId, downstreamId, upKey, downKey };
}

function assemble(input: Partial<Input>): RunGraph {
  return assembleGraph({ attempt: 1, groups: [], tasks: [], keyEdges: [], idEdges: [], expanded: new Set(), ...input });
}

/** Edges as `source->target:count`, sorted, for order-free comparison. */
function edgeList(edges: GraphEdge[]): string[] {
  for (const e of edges) assert.equal(e.id, `${e.source}->${e.target}`);
  return edges.map((e) => `${e.source}->${e.target}:${e.count}`).sort();
}

function node(graph: RunGraph, id: string) {
  const found = graph.nodes.find((n) => n.id === id);
  assert.ok(found, `no node ${id} in ${graph.nodes.map((n) => n.id).join(", ")}`);
  return found;
}

describe("groupState", () => {
  test("anything failing wins, then running, then waiting, then done", () => {
    assert.equal(groupState({ COMPLETED: 10, RUNNING: 3, FAILED: 1 }), "FAILED");
    assert.equal(groupState({ COMPLETED: 10, RUNNING: 3, CRASHED: 1 }), "CRASHED");
    assert.equal(groupState({ FAILED: 1, CRASHED: 1 }), "FAILED");
    assert.equal(groupState({ COMPLETED: 10, RUNNING: 1, PENDING: 4 }), "RUNNING");
    assert.equal(groupState({ COMPLETED: 10, PENDING: 4, SCHEDULED: 2 }), "PENDING");
    assert.equal(groupState({ COMPLETED: 1, SCHEDULED: 2 }), "SCHEDULED");
    assert.equal(groupState({ COMPLETED: 1, PAUSED: 1 }), "PAUSED");
    assert.equal(groupState({ COMPLETED: 9, CANCELLED: 1 }), "CANCELLED");
    assert.equal(groupState({ COMPLETED: 9, CANCELLING: 1, PENDING: 1 }), "CANCELLING");
    assert.equal(groupState({ COMPLETED: 9 }), "COMPLETED");
  });

  test("zero counts do not count; nothing at all looks pending", () => {
    assert.equal(groupState({ FAILED: 0, RUNNING: 0, COMPLETED: 2 }), "COMPLETED");
    assert.equal(groupState({}), "PENDING");
    assert.equal(groupState({ FAILED: 0 }), "PENDING");
  });
});

describe("assembleGraph", () => {
  test("a task with one run is a task node; a task with several is one group node with per-state counts", () => {
    const graph = assemble({
      groups: [
        { taskKey: "square", stateType: "COMPLETED", count: 7 },
        { taskKey: "square", stateType: "FAILED", count: 2 },
        { taskKey: "square", stateType: "RUNNING", count: 1 },
        { taskKey: "total", stateType: "RUNNING", count: 1 },
      ],
      tasks: [task("t1", "total", "RUNNING", { childFlowRunId: "child-1" })],
    });
    assert.equal(graph.attempt, 1);
    assert.equal(graph.nodes.length, 2);
    const group = node(graph, "group:square");
    assert.equal(group.kind, "group");
    assert.equal(group.taskKey, "square");
    assert.equal(group.label, "square");
    assert.deepEqual(group.counts, { COMPLETED: 7, FAILED: 2, RUNNING: 1 });
    assert.equal(group.total, 10);
    assert.equal(group.stateType, "FAILED");
    assert.equal(group.stateName, "Failed");
    assert.equal(group.hidden, 0);
    assert.equal(group.childFlowRunId, null);
    assert.equal(group.startTime, null);

    const single = node(graph, "t1");
    assert.equal(single.kind, "task");
    assert.equal(single.taskKey, "total");
    assert.equal(single.label, "total-t1");
    assert.equal(single.stateType, "RUNNING");
    assert.equal(single.stateName, "Running");
    assert.deepEqual(single.counts, { RUNNING: 1 });
    assert.equal(single.total, 1);
    assert.equal(single.childFlowRunId, "child-1");
    assert.equal(single.startTime, T0.toISOString());
    assert.equal(single.endTime, null);
    assert.equal(single.hidden, 0);

    // The whole attempt: counts over every task run.
    assert.deepEqual(graph.counts, { COMPLETED: 7, FAILED: 2, RUNNING: 2 });
    assert.equal(graph.total, 11);
    assert.deepEqual(graph.edges, []);
  });

  test("task runs of a collapsed group passed as tasks are not drawn one by one", () => {
    const graph = assemble({
      groups: [{ taskKey: "square", stateType: "COMPLETED", count: 2 }],
      tasks: [task("s0", "square"), task("s1", "square")],
    });
    assert.deepEqual(
      graph.nodes.map((n) => n.id),
      ["group:square"],
    );
  });

  test("edges between collapsed groups are aggregate edges with their counts; a group's edges to itself are dropped", () => {
    const graph = assemble({
      groups: [
        { taskKey: "load", stateType: "COMPLETED", count: 3 },
        { taskKey: "train", stateType: "COMPLETED", count: 4 },
        { taskKey: "train", stateType: "RUNNING", count: 2 },
      ],
      keyEdges: [
        { from: "load", to: "train", count: 18 },
        { from: "train", to: "train", count: 5 },
        { from: "load", to: "load", count: 2 },
      ],
    });
    assert.deepEqual(edgeList(graph.edges), ["group:load->group:train:18"]);
    assert.equal(node(graph, "group:train").stateType, "RUNNING");
    assert.equal(node(graph, "group:train").stateName, "Running");
    assert.equal(node(graph, "group:train").total, 6);
  });

  test("edges between a group and a single task come per task run and add up; the aggregate row is not counted again", () => {
    const graph = assemble({
      groups: [
        { taskKey: "square", stateType: "COMPLETED", count: 3 },
        { taskKey: "pick", stateType: "COMPLETED", count: 1 },
        { taskKey: "flaky", stateType: "RUNNING", count: 1 },
      ],
      tasks: [task("p", "pick"), task("f", "flaky", "RUNNING")],
      keyEdges: [
        { from: "square", to: "pick", count: 3 },
        { from: "pick", to: "flaky", count: 1 },
      ],
      idEdges: [
        edge("s0", "p", "square", "pick"),
        edge("s1", "p", "square", "pick"),
        edge("s2", "p", "square", "pick"),
        edge("p", "f", "pick", "flaky"),
      ],
    });
    assert.deepEqual(edgeList(graph.edges), ["group:square->p:3", "p->f:1"]);
    assert.deepEqual(graph.nodes.map((n) => n.id).sort(), ["f", "group:square", "p"]);
  });

  test("an id edge between two collapsed groups is ignored (the aggregate edge stands for it)", () => {
    const graph = assemble({
      groups: [
        { taskKey: "a", stateType: "COMPLETED", count: 2 },
        { taskKey: "b", stateType: "COMPLETED", count: 2 },
      ],
      keyEdges: [{ from: "a", to: "b", count: 2 }],
      idEdges: [edge("a0", "b0", "a", "b"), edge("a1", "b1", "a", "b")],
    });
    assert.deepEqual(edgeList(graph.edges), ["group:a->group:b:2"]);
  });

  test("an expanded group shows its members with member-level edges and edges to other groups and tasks", () => {
    const graph = assemble({
      groups: [
        { taskKey: "load", stateType: "COMPLETED", count: 2 },
        { taskKey: "square", stateType: "COMPLETED", count: 2 },
        { taskKey: "square", stateType: "FAILED", count: 1 },
        { taskKey: "pick", stateType: "PENDING", count: 1 },
      ],
      tasks: [task("s0", "square"), task("s1", "square"), task("s2", "square", "FAILED"), task("p", "pick", "PENDING")],
      keyEdges: [
        { from: "load", to: "square", count: 2 },
        { from: "square", to: "pick", count: 3 },
        { from: "square", to: "square", count: 1 },
      ],
      idEdges: [
        edge("l0", "s0", "load", "square"),
        edge("l1", "s0", "load", "square"),
        edge("s0", "s1", "square", "square"),
        edge("s0", "p", "square", "pick"),
        edge("s1", "p", "square", "pick"),
        edge("s2", "p", "square", "pick"),
      ],
      expanded: new Set(["square"]),
    });
    assert.deepEqual(graph.nodes.map((n) => n.id).sort(), ["group:load", "p", "s0", "s1", "s2"]);
    for (const id of ["s0", "s1", "s2"]) {
      const member = node(graph, id);
      assert.equal(member.kind, "task");
      assert.equal(member.taskKey, "square");
      assert.equal(member.total, 1);
      assert.equal(member.hidden, 0);
    }
    assert.equal(node(graph, "s2").stateType, "FAILED");
    assert.deepEqual(edgeList(graph.edges), ["group:load->s0:2", "s0->p:1", "s0->s1:1", "s1->p:1", "s2->p:1"]);
    assert.equal(graph.total, 6);
  });

  test("expanding a task with a single run changes nothing; expanding an unknown key is harmless", () => {
    const input = {
      groups: [
        { taskKey: "square", stateType: "COMPLETED", count: 2 },
        { taskKey: "pick", stateType: "COMPLETED", count: 1 },
      ],
      tasks: [task("p", "pick")],
      idEdges: [edge("s0", "p", "square", "pick"), edge("s1", "p", "square", "pick")],
    };
    const plain = assemble(input);
    const expanded = assemble({ ...input, expanded: new Set(["pick", "nope"]) });
    assert.deepEqual(expanded, plain);
    assert.deepEqual(edgeList(plain.edges), ["group:square->p:2"]);
  });

  test("an expanded group over the cap draws the members given and says how many are hidden", () => {
    const size = EXPANDED_GROUP_CAP + 50;
    const members = Array.from({ length: EXPANDED_GROUP_CAP }, (_, i) => task(`m${i}`, "square"));
    const graph = assemble({
      groups: [
        { taskKey: "square", stateType: "COMPLETED", count: size - 1 },
        { taskKey: "square", stateType: "RUNNING", count: 1 },
        { taskKey: "total", stateType: "PENDING", count: 1 },
      ],
      tasks: [...members, task("t", "total", "PENDING")],
      idEdges: [
        edge("m0", "t", "square", "total"),
        edge("m1", "t", "square", "total"),
        // A member over the cap is not drawn: its edge has nowhere to go.
        edge(`m${size - 1}`, "t", "square", "total"),
      ],
      expanded: new Set(["square"]),
    });
    const drawn = graph.nodes.filter((n) => n.taskKey === "square");
    assert.equal(drawn.length, EXPANDED_GROUP_CAP);
    assert.ok(drawn.every((n) => n.kind === "task"));
    assert.equal(
      drawn.reduce((a, n) => a + n.hidden, 0),
      50,
    );
    assert.equal(drawn[0]?.hidden, 50);
    assert.ok(!graph.nodes.some((n) => n.id === "group:square"));
    assert.deepEqual(edgeList(graph.edges), ["m0->t:1", "m1->t:1"]);
    assert.equal(graph.total, size + 1);
    assert.deepEqual(graph.counts, { COMPLETED: size - 1, RUNNING: 1, PENDING: 1 });
  });

  test("an expanded group with every member drawn hides nothing", () => {
    const members = Array.from({ length: 3 }, (_, i) => task(`m${i}`, "square"));
    const graph = assemble({
      groups: [{ taskKey: "square", stateType: "COMPLETED", count: 3 }],
      tasks: members,
      expanded: new Set(["square"]),
    });
    assert.deepEqual(
      graph.nodes.map((n) => [n.id, n.hidden]),
      [
        ["m0", 0],
        ["m1", 0],
        ["m2", 0],
      ],
    );
  });

  test("an empty run is an empty graph", () => {
    const graph = assemble({ attempt: null });
    assert.deepEqual(graph, { attempt: null, nodes: [], edges: [], counts: {}, total: 0 });
  });
});
