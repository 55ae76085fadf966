/** @ferry/agent: runs flow runs pushed by a Ferry control plane, each in its own process. */
export { AGENT_VERSION, Agent, type AgentOptions, type AgentStatus } from "./agent.ts";
export { BASE_VARIABLES, type FlowEnvOptions, flowEnvironment, flowEnvProblems } from "./flow-env.ts";
