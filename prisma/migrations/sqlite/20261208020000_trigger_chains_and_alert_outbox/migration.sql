-- AlterTable
ALTER TABLE "FlowRun" ADD COLUMN "triggeredById" TEXT;
ALTER TABLE "FlowRun" ADD COLUMN "triggeringRunId" TEXT;
ALTER TABLE "FlowRun" ADD COLUMN "triggerChainJson" TEXT NOT NULL DEFAULT '[]';

-- AlterTable
ALTER TABLE "Trigger" ADD COLUMN "lastRefusal" TEXT;
ALTER TABLE "Trigger" ADD COLUMN "lastRefusedAt" DATETIME;
ALTER TABLE "Trigger" ADD COLUMN "windowStartedAt" DATETIME;
ALTER TABLE "Trigger" ADD COLUMN "windowFirings" INTEGER NOT NULL DEFAULT 0;

-- CreateTable
CREATE TABLE "NotificationOutbox" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "flowRunId" TEXT NOT NULL,
    "deploymentId" TEXT,
    "stateType" TEXT NOT NULL,
    "stateName" TEXT NOT NULL,
    "attempt" INTEGER NOT NULL,
    "createdAt" DATETIME NOT NULL
);

-- CreateIndex
CREATE INDEX "NotificationOutbox_createdAt_idx" ON "NotificationOutbox"("createdAt");
