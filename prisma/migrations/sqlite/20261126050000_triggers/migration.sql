-- CreateTable
CREATE TABLE "Trigger" (
    "id" TEXT NOT NULL PRIMARY KEY,
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
    "lastFiredAt" DATETIME,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "Trigger_deploymentId_fkey" FOREIGN KEY ("deploymentId") REFERENCES "Deployment" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateIndex
CREATE INDEX "Trigger_workspaceId_idx" ON "Trigger"("workspaceId");

-- CreateIndex
CREATE INDEX "Trigger_sourceDeploymentId_idx" ON "Trigger"("sourceDeploymentId");
