-- AlterTable
ALTER TABLE "FlowRun" ADD COLUMN     "triggerChainJson" TEXT NOT NULL DEFAULT '[]',
ADD COLUMN     "triggeredById" TEXT,
ADD COLUMN     "triggeringRunId" TEXT;

-- AlterTable
ALTER TABLE "Trigger" ADD COLUMN     "lastRefusal" TEXT,
ADD COLUMN     "lastRefusedAt" TIMESTAMP(3),
ADD COLUMN     "windowFirings" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "windowStartedAt" TIMESTAMP(3);

-- CreateTable
CREATE TABLE "NotificationOutbox" (
    "id" TEXT NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "flowRunId" TEXT NOT NULL,
    "deploymentId" TEXT,
    "stateType" TEXT NOT NULL,
    "stateName" TEXT NOT NULL,
    "attempt" INTEGER NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "NotificationOutbox_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "NotificationOutbox_createdAt_idx" ON "NotificationOutbox"("createdAt");
