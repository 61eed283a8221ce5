'use strict';

// Serverless plugin: the project's last packaging steps (see deploy/finish_artifacts.py for the why).
//
// 1. Between serverless-python-requirements' install (before:…createDeploymentArtifacts) and its
//    injection into the zips (after:…), finish the installed dependencies in place: bytecode for the
//    runtime's Python, stripped shared objects. Injection then copies less.
// 2. After the injection (this plugin is listed after that one in serverless.yml, so its after: hook
//    runs later), finish each function's zip: bytecode for our own modules, the distributions that
//    function never imports removed, the size budget enforced. This runs before the functions are
//    compiled into the template, so the code hashes there are those of the final zips.
// 3. Drop the shared execution role when no function uses it: serverless-iam-roles-per-function gives
//    each function its own role but leaves the framework's shared one (the union of every event's
//    permissions) in the template, where nothing needs it and anyone allowed to pass roles could use it.
// 4. With X-Ray tracing on (the `tracing` param), give each traced function's own role X-Ray's write
//    actions, which the framework adds to the shared role only.

const path = require('path');
const { spawnSync } = require('child_process');

const SCRIPT = path.join(__dirname, 'finish_artifacts.py');

class PackagePlugin {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = {
      'package:createDeploymentArtifacts': () => this.finishRequirements(),
      'deploy:function:packageFunction': () => this.finishRequirements(),
      'after:package:createDeploymentArtifacts': () => this.finishZips(),
      'after:deploy:function:packageFunction': () => this.finishZips(),
      'before:package:finalize': () => { this.grantTracing(); this.dropUnusedSharedRole(); },
    };
  }

  get settings() {
    const custom = this.serverless.service.custom || {};
    return {
      python: (custom.pythonRequirements || {}).pythonBin || 'python3.12',
      ...(custom.artifacts || {}),
    };
  }

  run(args, what) {
    const { python } = this.settings;
    const result = spawnSync(python, [SCRIPT, ...args], { stdio: 'inherit' });
    if (result.error || result.status !== 0) {
      const reason = result.error ? result.error.message : `exit status ${result.status}`;
      throw new this.serverless.classes.Error(`finishing ${what} failed (${python}): ${reason}`);
    }
  }

  finishRequirements() {
    const directory = path.join(this.serverless.serviceDir, '.serverless', 'requirements');
    const args = ['requirements', directory];
    if (this.settings.sourcelessDependencies) args.push('--sourceless');
    this.run(args, 'the dependencies');
  }

  finishZips() {
    const service = this.serverless.service;
    const perFunction = this.settings.functions || {};
    for (const name of service.getAllFunctions()) {
      const artifact = (service.getFunction(name).package || {}).artifact;
      if (!artifact) continue;
      const own = perFunction[name] || {};
      const args = ['zip', path.resolve(this.serverless.serviceDir, artifact)];
      // Entries may be lists themselves (a shared list referenced with ${self:...}).
      for (const dist of (own.drop || []).flat()) args.push('--drop', dist);
      for (const relative of own.prune || []) args.push('--prune', relative);
      if (own.maxUnzippedMiB) args.push('--max-unzipped-mib', String(own.maxUnzippedMiB));
      this.run(args, `the ${name} package`);
    }
  }

  // With `tracing: true` (a stage param), the framework grants X-Ray's write actions only to its shared
  // role; Lambda refuses active tracing unless the function's own role may send segments. X-Ray has no
  // resource-level permissions, hence `*`.
  grantTracing() {
    const template = this.serverless.service.provider.compiledCloudFormationTemplate;
    const functions = Object.values(template.Resources).filter(
      (r) => r.Type === 'AWS::Lambda::Function' && r.Properties.TracingConfig
        && r.Properties.TracingConfig.Mode === 'Active');
    for (const fn of functions) {
      const roleId = fn.Properties.Role && fn.Properties.Role['Fn::GetAtt'] && fn.Properties.Role['Fn::GetAtt'][0];
      const role = roleId && template.Resources[roleId];
      if (!role || !role.Properties.Policies || !role.Properties.Policies.length) continue;
      const statements = role.Properties.Policies[0].PolicyDocument.Statement;
      if (statements.some((s) => s.Sid === 'XRayTracing')) continue;
      statements.push({ Sid: 'XRayTracing', Effect: 'Allow',
        Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], Resource: '*' });
    }
  }

  dropUnusedSharedRole() {
    const template = this.serverless.service.provider.compiledCloudFormationTemplate;
    const roleId = this.serverless.getProvider('aws').naming.getRoleLogicalId();
    if (!template.Resources[roleId]) return;
    this.pointMappingsAtFunctionRoles(template, roleId);
    const rest = { ...template, Resources: { ...template.Resources } };
    delete rest.Resources[roleId];
    if (!JSON.stringify(rest).includes(`"${roleId}"`)) delete template.Resources[roleId];
  }

  // serverless-iam-roles-per-function moves an event source mapping's DependsOn from the shared role to
  // the function's own role only when the mapping names the function with Fn::GetAtt. With SnapStart
  // the mapping names the alias (Fn::Join of the function's Arn and `snapstart`), and its DependsOn
  // would keep the shared role in the template: move it here, to the role the function really uses.
  pointMappingsAtFunctionRoles(template, roleId) {
    for (const mapping of Object.values(template.Resources)) {
      if (mapping.Type !== 'AWS::Lambda::EventSourceMapping' || !mapping.DependsOn) continue;
      const name = mapping.Properties.FunctionName || {};
      const parts = name['Fn::Join'] ? name['Fn::Join'][1] : [name];
      const getAtt = parts.map((part) => part && part['Fn::GetAtt']).find(Boolean);
      const role = getAtt && template.Resources[getAtt[0]] && template.Resources[getAtt[0]].Properties.Role;
      const own = role && role['Fn::GetAtt'] && role['Fn::GetAtt'][0];
      if (!own) continue;
      const dependsOn = [].concat(mapping.DependsOn).map((id) => (id === roleId ? own : id));
      mapping.DependsOn = [...new Set(dependsOn)];
    }
  }
}

module.exports = PackagePlugin;
