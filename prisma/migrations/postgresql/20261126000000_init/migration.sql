-- CreateTable
CREATE TABLE "Workspace" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "slug" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Workspace_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ApiToken" (
    "id" TEXT NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "scopes" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expiresAt" TIMESTAMP(3),
    "revokedAt" TIMESTAMP(3),
    "lastUsedAt" TIMESTAMP(3),

    CONSTRAINT "ApiToken_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Setting" (
    "key" TEXT NOT NULL,
    "value" TEXT NOT NULL,

    CONSTRAINT "Setting_pkey" PRIMARY KEY ("key")
);

-- CreateTable
CREATE TABLE "Flow" (
    "id" TEXT NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Flow_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Deployment" (
    "id" TEXT NOT NULL,
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
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Deployment_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "FlowRun" (
    "id" TEXT NOT NULL,
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
    "stateTimestamp" TIMESTAMP(3) NOT NULL,
    "attempt" INTEGER NOT NULL DEFAULT 0,
    "maxRetries" INTEGER NOT NULL DEFAULT 0,
    "retryDelayMs" INTEGER NOT NULL DEFAULT 0,
    "timeoutMs" INTEGER,
    "agentId" TEXT,
    "leaseExpiresAt" TIMESTAMP(3),
    "expectedStartTime" TIMESTAMP(3) NOT NULL,
    "startTime" TIMESTAMP(3),
    "endTime" TIMESTAMP(3),
    "idempotencyKey" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "FlowRun_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "FlowRunState" (
    "id" TEXT NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "flowRunId" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "message" TEXT,
    "timestamp" TIMESTAMP(3) NOT NULL,
    "attempt" INTEGER NOT NULL,
    "eventId" TEXT,

    CONSTRAINT "FlowRunState_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "TaskRun" (
    "id" TEXT NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "flowRunId" TEXT NOT NULL,
    "taskKey" TEXT NOT NULL,
    "dynamicKey" INTEGER NOT NULL,
    "name" TEXT NOT NULL,
    "tagsJson" TEXT NOT NULL,
    "stateType" TEXT NOT NULL,
    "stateName" TEXT NOT NULL,
    "stateMessage" TEXT,
    "stateTimestamp" TIMESTAMP(3) NOT NULL,
    "attempt" INTEGER NOT NULL DEFAULT 0,
    "maxRetries" INTEGER NOT NULL DEFAULT 0,
    "childFlowRunId" TEXT,
    "startTime" TIMESTAMP(3),
    "endTime" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "TaskRun_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "TaskRunState" (
    "id" TEXT NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "taskRunId" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "message" TEXT,
    "timestamp" TIMESTAMP(3) NOT NULL,
    "attempt" INTEGER NOT NULL,

    CONSTRAINT "TaskRunState_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "TaskRunEdge" (
    "workspaceId" TEXT NOT NULL,
    "flowRunId" TEXT NOT NULL,
    "upstreamId" TEXT NOT NULL,
    "downstreamId" TEXT NOT NULL,

    CONSTRAINT "TaskRunEdge_pkey" PRIMARY KEY ("upstreamId", "downstreamId")
);

-- CreateTable
CREATE TABLE "Log" (
    "id" SERIAL NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "flowRunId" TEXT NOT NULL,
    "taskRunId" TEXT,
    "attempt" INTEGER NOT NULL,
    "seq" INTEGER NOT NULL,
    "level" TEXT NOT NULL,
    "message" TEXT NOT NULL,
    "timestamp" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Log_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Agent" (
    "id" TEXT NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "tokenId" TEXT NOT NULL,
    "poolsJson" TEXT NOT NULL,
    "labelsJson" TEXT NOT NULL,
    "capacity" INTEGER NOT NULL,
    "version" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "connectedAt" TIMESTAMP(3),
    "lastHeartbeatAt" TIMESTAMP(3),
    "disconnectedAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Agent_pkey" PRIMARY KEY ("id")
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

-- AddForeignKey
ALTER TABLE "ApiToken" ADD CONSTRAINT "ApiToken_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Flow" ADD CONSTRAINT "Flow_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Deployment" ADD CONSTRAINT "Deployment_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Deployment" ADD CONSTRAINT "Deployment_flowId_fkey" FOREIGN KEY ("flowId") REFERENCES "Flow"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "FlowRun" ADD CONSTRAINT "FlowRun_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "FlowRun" ADD CONSTRAINT "FlowRun_flowId_fkey" FOREIGN KEY ("flowId") REFERENCES "Flow"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "FlowRun" ADD CONSTRAINT "FlowRun_deploymentId_fkey" FOREIGN KEY ("deploymentId") REFERENCES "Deployment"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "FlowRunState" ADD CONSTRAINT "FlowRunState_flowRunId_fkey" FOREIGN KEY ("flowRunId") REFERENCES "FlowRun"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "TaskRun" ADD CONSTRAINT "TaskRun_flowRunId_fkey" FOREIGN KEY ("flowRunId") REFERENCES "FlowRun"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "TaskRunState" ADD CONSTRAINT "TaskRunState_taskRunId_fkey" FOREIGN KEY ("taskRunId") REFERENCES "TaskRun"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "TaskRunEdge" ADD CONSTRAINT "TaskRunEdge_flowRunId_fkey" FOREIGN KEY ("flowRunId") REFERENCES "FlowRun"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Log" ADD CONSTRAINT "Log_flowRunId_fkey" FOREIGN KEY ("flowRunId") REFERENCES "FlowRun"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Agent" ADD CONSTRAINT "Agent_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace"("id") ON DELETE CASCADE ON UPDATE CASCADE;
