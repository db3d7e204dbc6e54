// PAIV2: what the SDK makes of the surface's refusals: a wrong password at login, a job that
// is not there, a name already taken, a user read, and the token after a logout.
//
//   node v2_refusals.js <rest_server_uri> <username> <password> <taken>
//
// `taken` is a job name the user's job holds. Prints each call's outcome ({ok} or {error:
// {class, status, code, message}}); exits 0.
'use strict';

const {EXIT, args, finish, limit, outcome} = require('./common');
const {PAIV2} = require('@microsoft/openpai-js-sdk');

const a = args(['uri', 'username', 'password', 'taken']);
const seen = {};
limit(60, () => seen);

const cluster = (password) => ({rest_server_uri: a.uri, username: a.username, password, https: false});

(async () => {
  seen.wrongPassword = await outcome(new PAIV2.OpenPAIClient(cluster('wrong-password')).authn.basicLogin());
  const client = new PAIV2.OpenPAIClient(cluster(a.password));
  seen.missingJob = await outcome(client.job.getJob(a.username, 'no-such-job'));
  seen.taken = await outcome(client.job.createJob({
    protocolVersion: 2,
    name: a.taken,
    type: 'job',
    taskRoles: {main: {commands: ['example/production/deploy']}},
  }));
  seen.me = await outcome(client.user.getUser(a.username));
  seen.info = await outcome(client.api.getClusterInfo());
  seen.logout = await outcome(client.authn.basicLogout());
  seen.afterLogout = await outcome(client.job.getJob(a.username, a.taken));
  finish(EXIT.ok, seen);
})().catch((e) => finish(EXIT.failed, {...seen, error: String(e)}));
