"use client";

import dagre from "@dagrejs/dagre";
import {
  Background,
  Controls,
  type Edge,
  Handle,
  MiniMap,
  type Node,
  type NodeProps,
  Position,
  ReactFlow,
  ReactFlowProvider,
  useReactFlow,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import Link from "next/link";
import { memo, useEffect, useMemo } from "react";
import { StateBar } from "@/components/state-badge";
import type { GraphNode, RunGraph } from "@/lib/api";

const NODE_W = 220;
const TASK_H = 54;
const GROUP_H = 70;

type DagNodeData = { node: GraphNode; selected: boolean; expanded: boolean; onToggle(key: string): void };
type DagNode = Node<DagNodeData, "task" | "taskgroup">;

/**
 * Lays the graph out left to right (dagre). Only the structure (node ids and edges) goes in,
 * so a run whose states change keeps its picture still; new nodes re-run the layout.
 */
function layout(graph: RunGraph): Map<string, { x: number; y: number }> {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 64, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of graph.nodes) g.setNode(n.id, { width: NODE_W, height: n.kind === "group" ? GROUP_H : TASK_H });
  for (const e of graph.edges) g.setEdge(e.source, e.target);
  dagre.layout(g);
  const out = new Map<string, { x: number; y: number }>();
  for (const n of graph.nodes) {
    const p = g.node(n.id);
    out.set(n.id, { x: p.x - NODE_W / 2, y: p.y - (n.kind === "group" ? GROUP_H : TASK_H) / 2 });
  }
  return out;
}

function structureKey(graph: RunGraph): string {
  return `${graph.nodes.map((n) => n.id).join(",")}|${graph.edges.map((e) => e.id).join(",")}`;
}

const TaskNode = memo(function TaskNode({ data }: NodeProps<DagNode>) {
  const n = data.node;
  return (
    <div
      className={`node state-${n.stateType.toLowerCase()}${data.selected ? " selected" : ""}${n.stateType === "RUNNING" ? " running" : ""}`}
      data-testid="dag-node"
      data-kind="task"
      data-task-key={n.taskKey}
      data-state={n.stateType}
      title={`${n.label}: ${n.stateName}`}
    >
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <div className="node-title">{n.label}</div>
      <div className="node-sub">
        <span className="state">{n.stateName}</span>
        {n.childFlowRunId ? (
          <Link href={`/runs/${n.childFlowRunId}`} onClick={(e) => e.stopPropagation()} className="small">
            child run ↗
          </Link>
        ) : null}
        {n.hidden ? <span className="node-count">+{n.hidden.toLocaleString("en-US")}</span> : null}
      </div>
      <Handle type="source" position={Position.Right} isConnectable={false} />
    </div>
  );
});

const GroupNode = memo(function GroupNode({ data }: NodeProps<DagNode>) {
  const n = data.node;
  const done = n.counts.COMPLETED ?? 0;
  return (
    <div
      className={`node group state-${n.stateType.toLowerCase()}${data.selected ? " selected" : ""}`}
      data-testid="dag-node"
      data-kind="group"
      data-task-key={n.taskKey}
      data-state={n.stateType}
      data-total={n.total}
      title={`${n.label}: ${n.total} task runs (click to expand)`}
    >
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <div className="node-head">
        <div className="node-title">{n.label}</div>
        <span className="node-count">×{n.total.toLocaleString("en-US")}</span>
      </div>
      <div className="node-sub">
        <span className="state">{n.stateName}</span>
        <span className="num">
          {done.toLocaleString("en-US")} of {n.total.toLocaleString("en-US")} done
        </span>
        <button
          type="button"
          className="link-button small node-action"
          onClick={(e) => {
            e.stopPropagation();
            data.onToggle(n.taskKey);
          }}
        >
          {data.expanded ? "collapse" : "expand"}
        </button>
      </div>
      <StateBar counts={n.counts} total={n.total} />
      <Handle type="source" position={Position.Right} isConnectable={false} />
    </div>
  );
});

// "taskgroup", not "group": React Flow styles its own built-in "group" node type.
const nodeTypes = { task: TaskNode, taskgroup: GroupNode };

export interface DagProps {
  graph: RunGraph;
  selected: string | null;
  expanded: ReadonlySet<string>;
  onSelect(node: GraphNode): void;
  onToggleGroup(taskKey: string): void;
}

function DagCanvas({ graph, selected, expanded, onSelect, onToggleGroup }: DagProps) {
  const key = structureKey(graph);
  // biome-ignore lint/correctness/useExhaustiveDependencies: the layout depends on the structure only
  const positions = useMemo(() => layout(graph), [key]);
  const { fitView } = useReactFlow();
  // biome-ignore lint/correctness/useExhaustiveDependencies: refit when the structure changes
  useEffect(() => {
    const t = setTimeout(() => void fitView({ padding: 0.15, maxZoom: 1.1, duration: 200 }), 30);
    return () => clearTimeout(t);
  }, [key, fitView]);

  const nodes: DagNode[] = useMemo(
    () =>
      graph.nodes.map((n) => ({
        id: n.id,
        type: n.kind === "group" ? "taskgroup" : "task",
        position: positions.get(n.id) ?? { x: 0, y: 0 },
        data: { node: n, selected: selected === n.id, expanded: expanded.has(n.taskKey), onToggle: onToggleGroup },
        draggable: false,
        connectable: false,
      })),
    [graph, positions, selected, expanded, onToggleGroup],
  );
  const edges: Edge[] = useMemo(
    () =>
      graph.edges.map((e) => {
        const target = graph.nodes.find((n) => n.id === e.target);
        const live = target?.stateType === "RUNNING" || target?.stateType === "PENDING";
        return {
          id: e.id,
          source: e.source,
          target: e.target,
          animated: live,
          ...(e.count > 1 ? { label: `×${e.count.toLocaleString("en-US")}` } : {}),
        };
      }),
    [graph],
  );
  return (
    <ReactFlow
      nodes={nodes}
      edges={edges}
      nodeTypes={nodeTypes}
      onNodeClick={(_, node) => onSelect((node as DagNode).data.node)}
      nodesDraggable={false}
      nodesConnectable={false}
      elementsSelectable={false}
      minZoom={0.05}
      maxZoom={2}
      fitView
      proOptions={{ hideAttribution: true }}
    >
      <Background gap={20} size={1} />
      <Controls showInteractive={false} />
      {graph.nodes.length > 12 ? <MiniMap pannable zoomable /> : null}
    </ReactFlow>
  );
}

/** The run's graph, drawn with React Flow; grows live as the run adds task runs. */
export function Dag(props: DagProps) {
  return (
    <div className="dag" data-testid="dag" data-nodes={props.graph.nodes.length} data-edges={props.graph.edges.length}>
      <ReactFlowProvider>
        <DagCanvas {...props} />
      </ReactFlowProvider>
    </div>
  );
}
