-- CreateTable
CREATE TABLE "Trigger" (
    "id" TEXT NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "deploymentId" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "active" BOOLEAN NOT NULL DEFAULT true,
    "sourceDeploymentId" TEXT,
    "statesJson" TEXT NOT NULL DEFAULT '[]',
    "secretHash" TEXT,
    "parametersJson" TEXT NOT NULL DEFAULT '{}',
    "mappingJson" TEXT NOT NULL DEFAULT '{}',
    "lastFiredAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Trigger_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Trigger_workspaceId_idx" ON "Trigger"("workspaceId");

-- CreateIndex
CREATE INDEX "Trigger_sourceDeploymentId_idx" ON "Trigger"("sourceDeploymentId");

-- AddForeignKey
ALTER TABLE "Trigger" ADD CONSTRAINT "Trigger_deploymentId_fkey" FOREIGN KEY ("deploymentId") REFERENCES "Deployment"("id") ON DELETE CASCADE ON UPDATE CASCADE;
