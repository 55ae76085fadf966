/**
 * @ferry/sdk: author flows and tasks, run them locally, and (for the agent) execute them
 * in a flow process. The wire protocol lives under `@ferry/sdk/protocol`.
 */
export { type Duration, toMs } from "./duration.ts";
export { NonRetriableError, ParameterError, TimeoutError } from "./errors.ts";
export {
  decoratedFlowDefs,
  type FlowMethodDecorator,
  flow,
  flowsInModule,
  flowsOf,
  isFlow,
  isTask,
  type TaskMethodDecorator,
  task,
} from "./runtime/authoring.ts";
export type { Flow, FlowDef, FlowOptions, FlowSchedule, ScheduleSpecInput } from "./runtime/flow.ts";
export { type LocalFlowRun, type LocalRunResult, type LocalTaskRun, type RunLocalOptions, runLocal } from "./runtime/local.ts";
export { emitEvent, getRunContext, log, type RunContext, type RunLogger } from "./runtime/scope.ts";
export type { MapItem, MapOptions, Task, TaskDef, TaskOptions } from "./runtime/task.ts";
