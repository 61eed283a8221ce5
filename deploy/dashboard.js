'use strict';

// The CloudWatch dashboard's body: `custom.dashboard` in serverless.yml (YAML, so it reads like the rest of
// the file and tests/ can load it), as the JSON string AWS::CloudWatch::Dashboard takes. Serverless has
// resolved its variables (stage, namespace, region) before this runs.
module.exports = async ({ resolveVariable }) => JSON.stringify(await resolveVariable('self:custom.dashboard'));
