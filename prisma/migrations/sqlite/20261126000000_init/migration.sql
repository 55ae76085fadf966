-- CreateTable
CREATE TABLE "Workspace" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "slug" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateTable
CREATE TABLE "ApiToken" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "scopes" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expiresAt" DATETIME,
    "revokedAt" DATETIME,
    "lastUsedAt" DATETIME,
    CONSTRAINT "ApiToken_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "Setting" (
    "key" TEXT NOT NULL PRIMARY KEY,
    "value" TEXT NOT NULL
);

-- CreateTable
CREATE TABLE "Flow" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "Flow_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "Deployment" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "flowId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT,
    "entrypoint" TEXT NOT NULL,
    "flowName" TEXT NOT NULL,
    "paramsSchemaJson" TEXT NOT NULL,
    "defaultParamsJson" TEXT NOT NULL,
    "workPool" TEXT NOT NULL,
    "tagsJson" TEXT NOT NULL,
    "retries" INTEGER NOT NULL DEFAULT 0,
    "retryDelayMs" INTEGER NOT NULL DEFAULT 0,
    "timeoutMs" INTEGER,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "Deployment_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "Deployment_flowId_fkey" FOREIGN KEY ("flowId") REFERENCES "Flow" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "FlowRun" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "flowId" TEXT NOT NULL,
    "deploymentId" TEXT,
    "parentFlowRunId" TEXT,
    "parentTaskRunId" TEXT,
    "name" TEXT NOT NULL,
    "parametersJson" TEXT NOT NULL,
    "tagsJson" TEXT NOT NULL,
    "workPool" TEXT NOT NULL,
    "stateType" TEXT NOT NULL,
    "stateName" TEXT NOT NULL,
    "stateMessage" TEXT,
    "stateTimestamp" DATETIME NOT NULL,
    "attempt" INTEGER NOT NULL DEFAULT 0,
    "maxRetries" INTEGER NOT NULL DEFAULT 0,
    "retryDelayMs" INTEGER NOT NULL DEFAULT 0,
    "timeoutMs" INTEGER,
    "agentId" TEXT,
    "leaseExpiresAt" DATETIME,
    "expectedStartTime" DATETIME NOT NULL,
    "startTime" DATETIME,
    "endTime" DATETIME,
    "idempotencyKey" TEXT,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "FlowRun_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "FlowRun_flowId_fkey" FOREIGN KEY ("flowId") REFERENCES "Flow" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "FlowRun_deploymentId_fkey" FOREIGN KEY ("deploymentId") REFERENCES "Deployment" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "FlowRunState" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "flowRunId" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "message" TEXT,
    "timestamp" DATETIME NOT NULL,
    "attempt" INTEGER NOT NULL,
    "eventId" TEXT,
    CONSTRAINT "FlowRunState_flowRunId_fkey" FOREIGN KEY ("flowRunId") REFERENCES "FlowRun" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "TaskRun" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "flowRunId" TEXT NOT NULL,
    "taskKey" TEXT NOT NULL,
    "dynamicKey" INTEGER NOT NULL,
    "name" TEXT NOT NULL,
    "tagsJson" TEXT NOT NULL,
    "stateType" TEXT NOT NULL,
    "stateName" TEXT NOT NULL,
    "stateMessage" TEXT,
    "stateTimestamp" DATETIME NOT NULL,
    "attempt" INTEGER NOT NULL DEFAULT 0,
    "maxRetries" INTEGER NOT NULL DEFAULT 0,
    "childFlowRunId" TEXT,
    "startTime" DATETIME,
    "endTime" DATETIME,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "TaskRun_flowRunId_fkey" FOREIGN KEY ("flowRunId") REFERENCES "FlowRun" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "TaskRunState" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "taskRunId" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "message" TEXT,
    "timestamp" DATETIME NOT NULL,
    "attempt" INTEGER NOT NULL,
    CONSTRAINT "TaskRunState_taskRunId_fkey" FOREIGN KEY ("taskRunId") REFERENCES "TaskRun" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "TaskRunEdge" (
    "workspaceId" TEXT NOT NULL,
    "flowRunId" TEXT NOT NULL,
    "upstreamId" TEXT NOT NULL,
    "downstreamId" TEXT NOT NULL,

    PRIMARY KEY ("upstreamId", "downstreamId"),
    CONSTRAINT "TaskRunEdge_flowRunId_fkey" FOREIGN KEY ("flowRunId") REFERENCES "FlowRun" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "Log" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "workspaceId" TEXT NOT NULL,
    "flowRunId" TEXT NOT NULL,
    "taskRunId" TEXT,
    "attempt" INTEGER NOT NULL,
    "seq" INTEGER NOT NULL,
    "level" TEXT NOT NULL,
    "message" TEXT NOT NULL,
    "timestamp" DATETIME NOT NULL,
    CONSTRAINT "Log_flowRunId_fkey" FOREIGN KEY ("flowRunId") REFERENCES "FlowRun" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "Agent" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "tokenId" TEXT NOT NULL,
    "poolsJson" TEXT NOT NULL,
    "labelsJson" TEXT NOT NULL,
    "capacity" INTEGER NOT NULL,
    "version" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "connectedAt" DATETIME,
    "lastHeartbeatAt" DATETIME,
    "disconnectedAt" DATETIME,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "Agent_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateIndex
CREATE UNIQUE INDEX "Workspace_slug_key" ON "Workspace"("slug");

-- CreateIndex
CREATE UNIQUE INDEX "ApiToken_hash_key" ON "ApiToken"("hash");

-- CreateIndex
CREATE INDEX "ApiToken_workspaceId_idx" ON "ApiToken"("workspaceId");

-- CreateIndex
CREATE UNIQUE INDEX "Flow_workspaceId_name_key" ON "Flow"("workspaceId", "name");

-- CreateIndex
CREATE INDEX "Deployment_flowId_idx" ON "Deployment"("flowId");

-- CreateIndex
CREATE UNIQUE INDEX "Deployment_workspaceId_name_key" ON "Deployment"("workspaceId", "name");

-- CreateIndex
CREATE INDEX "FlowRun_workspaceId_createdAt_idx" ON "FlowRun"("workspaceId", "createdAt");

-- CreateIndex
CREATE INDEX "FlowRun_stateType_workPool_expectedStartTime_idx" ON "FlowRun"("stateType", "workPool", "expectedStartTime");

-- CreateIndex
CREATE INDEX "FlowRun_agentId_idx" ON "FlowRun"("agentId");

-- CreateIndex
CREATE INDEX "FlowRun_parentFlowRunId_idx" ON "FlowRun"("parentFlowRunId");

-- CreateIndex
CREATE UNIQUE INDEX "FlowRun_workspaceId_idempotencyKey_key" ON "FlowRun"("workspaceId", "idempotencyKey");

-- CreateIndex
CREATE UNIQUE INDEX "FlowRunState_eventId_key" ON "FlowRunState"("eventId");

-- CreateIndex
CREATE INDEX "FlowRunState_flowRunId_timestamp_idx" ON "FlowRunState"("flowRunId", "timestamp");

-- CreateIndex
CREATE INDEX "TaskRun_workspaceId_idx" ON "TaskRun"("workspaceId");

-- CreateIndex
CREATE UNIQUE INDEX "TaskRun_flowRunId_taskKey_dynamicKey_key" ON "TaskRun"("flowRunId", "taskKey", "dynamicKey");

-- CreateIndex
CREATE INDEX "TaskRunState_taskRunId_timestamp_idx" ON "TaskRunState"("taskRunId", "timestamp");

-- CreateIndex
CREATE INDEX "TaskRunEdge_flowRunId_idx" ON "TaskRunEdge"("flowRunId");

-- CreateIndex
CREATE UNIQUE INDEX "Log_flowRunId_attempt_seq_key" ON "Log"("flowRunId", "attempt", "seq");

-- CreateIndex
CREATE INDEX "Agent_workspaceId_idx" ON "Agent"("workspaceId");
