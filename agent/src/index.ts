/** @ferry/agent: runs flow runs pushed by a Ferry control plane, each in its own process. */
export { AGENT_VERSION, Agent, type AgentOptions, type AgentStatus } from "./agent.ts";
