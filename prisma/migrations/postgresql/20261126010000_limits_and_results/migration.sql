-- AlterTable
ALTER TABLE "Deployment" ADD COLUMN     "collisionStrategy" TEXT NOT NULL DEFAULT 'ENQUEUE',
ADD COLUMN     "concurrencyLimit" INTEGER;

-- DropIndex
DROP INDEX "TaskRun_flowRunId_taskKey_dynamicKey_key";

-- AlterTable
ALTER TABLE "FlowRun" ADD COLUMN     "retryCount" INTEGER NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "TaskRun" ADD COLUMN     "cacheKey" TEXT,
ADD COLUMN     "flowRunAttempt" INTEGER NOT NULL DEFAULT 1,
ADD COLUMN     "resultRef" TEXT;

-- CreateIndex
CREATE UNIQUE INDEX "TaskRun_flowRunId_flowRunAttempt_taskKey_dynamicKey_key" ON "TaskRun"("flowRunId", "flowRunAttempt", "taskKey", "dynamicKey");

-- CreateTable
CREATE TABLE "WorkPool" (
    "id" TEXT NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "concurrencyLimit" INTEGER,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "WorkPool_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "TagLimit" (
    "id" TEXT NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "tag" TEXT NOT NULL,
    "maxConcurrent" INTEGER NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "TagLimit_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ConcurrencySlot" (
    "id" TEXT NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "tag" TEXT NOT NULL,
    "taskRunId" TEXT NOT NULL,
    "flowRunId" TEXT NOT NULL,
    "attempt" INTEGER NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ConcurrencySlot_pkey" PRIMARY KEY ("id")
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

-- AddForeignKey
ALTER TABLE "WorkPool" ADD CONSTRAINT "WorkPool_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "TagLimit" ADD CONSTRAINT "TagLimit_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ConcurrencySlot" ADD CONSTRAINT "ConcurrencySlot_flowRunId_fkey" FOREIGN KEY ("flowRunId") REFERENCES "FlowRun"("id") ON DELETE CASCADE ON UPDATE CASCADE;
