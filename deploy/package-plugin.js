'use strict';

// Serverless plugin, the project's last packaging steps:
//
// 1. Once serverless-python-requirements has injected the dependencies into each function's zip, run
//    deploy/finish_artifacts.py on it (bytecode for the runtime's Python, stripped shared objects,
//    per-function pruning, size budget). It hooks the same events as that plugin and is listed after it
//    in serverless.yml, so it sees the finished dependency set; it runs before the functions are
//    compiled into the template, so the code hashes there are those of the final zips.
// 2. Drop the shared execution role when no function uses it: serverless-iam-roles-per-function gives
//    each function its own role but leaves the framework's shared one (with the union of every event's
//    permissions) in the template, where nothing needs it and anyone allowed to pass roles could use it.

const path = require('path');
const { spawnSync } = require('child_process');

class FinishArtifacts {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = {
      'after:package:createDeploymentArtifacts': () => this.finishAll(),
      'after:deploy:function:packageFunction': () => this.finishAll(),
      'before:package:finalize': () => this.dropUnusedSharedRole(),
    };
  }

  finishAll() {
    const service = this.serverless.service;
    const custom = service.custom || {};
    const python = (custom.pythonRequirements || {}).pythonBin || 'python3.12';
    const settings = custom.artifacts || {};
    const script = path.join(__dirname, 'finish_artifacts.py');
    for (const name of service.getAllFunctions()) {
      const fn = service.getFunction(name);
      const artifact = fn.package && fn.package.artifact;
      if (!artifact) continue;
      const own = (settings.functions || {})[name] || {};
      const args = [script, path.resolve(this.serverless.serviceDir, artifact)];
      for (const dist of own.drop || []) args.push('--drop', dist);
      if (settings.sourcelessDependencies) args.push('--sourceless-dependencies');
      if (own.maxUnzippedMiB) args.push('--max-unzipped-mib', String(own.maxUnzippedMiB));
      const result = spawnSync(python, args, { stdio: 'inherit' });
      if (result.error || result.status !== 0) {
        const reason = result.error ? result.error.message : `exit status ${result.status}`;
        throw new this.serverless.classes.Error(`finishing the ${name} package failed (${python}): ${reason}`);
      }
    }
  }
}

FinishArtifacts.prototype.dropUnusedSharedRole = function dropUnusedSharedRole() {
  const template = this.serverless.service.provider.compiledCloudFormationTemplate;
  const roleId = this.serverless.getProvider('aws').naming.getRoleLogicalId();
  if (!template.Resources[roleId]) return;
  const rest = { ...template, Resources: { ...template.Resources } };
  delete rest.Resources[roleId];
  if (!JSON.stringify(rest).includes(`"${roleId}"`)) delete template.Resources[roleId];
};

module.exports = FinishArtifacts;
