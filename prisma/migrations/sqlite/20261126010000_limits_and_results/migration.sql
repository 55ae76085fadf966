-- AlterTable
ALTER TABLE "Deployment" ADD COLUMN "concurrencyLimit" INTEGER;
ALTER TABLE "Deployment" ADD COLUMN "collisionStrategy" TEXT NOT NULL DEFAULT 'ENQUEUE';

-- AlterTable
ALTER TABLE "FlowRun" ADD COLUMN "retryCount" INTEGER NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "TaskRun" ADD COLUMN "cacheKey" TEXT;
ALTER TABLE "TaskRun" ADD COLUMN "resultRef" TEXT;
ALTER TABLE "TaskRun" ADD COLUMN "flowRunAttempt" INTEGER NOT NULL DEFAULT 1;

-- DropIndex
DROP INDEX "TaskRun_flowRunId_taskKey_dynamicKey_key";

-- CreateIndex
CREATE UNIQUE INDEX "TaskRun_flowRunId_flowRunAttempt_taskKey_dynamicKey_key" ON "TaskRun"("flowRunId", "flowRunAttempt", "taskKey", "dynamicKey");

-- CreateTable
CREATE TABLE "WorkPool" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "concurrencyLimit" INTEGER,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "WorkPool_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "TagLimit" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "tag" TEXT NOT NULL,
    "maxConcurrent" INTEGER NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "TagLimit_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "ConcurrencySlot" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "tag" TEXT NOT NULL,
    "taskRunId" TEXT NOT NULL,
    "flowRunId" TEXT NOT NULL,
    "attempt" INTEGER NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "ConcurrencySlot_flowRunId_fkey" FOREIGN KEY ("flowRunId") REFERENCES "FlowRun" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateIndex
CREATE INDEX "FlowRun_flowId_idx" ON "FlowRun"("flowId");

-- CreateIndex
CREATE INDEX "FlowRun_deploymentId_idx" ON "FlowRun"("deploymentId");

-- CreateIndex
CREATE INDEX "FlowRun_endTime_idx" ON "FlowRun"("endTime");

-- CreateIndex
CREATE UNIQUE INDEX "WorkPool_workspaceId_name_key" ON "WorkPool"("workspaceId", "name");

-- CreateIndex
CREATE UNIQUE INDEX "TagLimit_workspaceId_tag_key" ON "TagLimit"("workspaceId", "tag");

-- CreateIndex
CREATE INDEX "ConcurrencySlot_workspaceId_tag_idx" ON "ConcurrencySlot"("workspaceId", "tag");

-- CreateIndex
CREATE INDEX "ConcurrencySlot_flowRunId_idx" ON "ConcurrencySlot"("flowRunId");

-- CreateIndex
CREATE UNIQUE INDEX "ConcurrencySlot_tag_taskRunId_key" ON "ConcurrencySlot"("tag", "taskRunId");
