// A proxyless gRPC client (grpc-js with @grpc/grpc-js-xds) for tests/proxyless_grpc.rs.
//
//     GRPC_XDS_BOOTSTRAP=bootstrap.json node xds_grpc_js_client.js TARGET
//
// Opens one channel to TARGET (such as xds:///echo-target) and keeps it. For each line read on stdin (a service
// name), one grpc.health.v1 Check on that channel (3 s deadline); prints the status name (SERVING, ...) or the
// error code name and its details. Exits when stdin closes. Needs `npm ci` in this folder (see README.md).
'use strict';

const path = require('path');
const readline = require('readline');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
require('@grpc/grpc-js-xds').register();

const target = process.argv[2];
if (!target) {
  console.error('usage: node xds_grpc_js_client.js TARGET');
  process.exit(2);
}
const definition = protoLoader.loadSync(path.join(__dirname, 'health.proto'), { enums: String });
const { Health } = grpc.loadPackageDefinition(definition).grpc.health.v1;
const client = new Health(target, grpc.credentials.createInsecure());
const codeNames = Object.fromEntries(Object.entries(grpc.status).map(([name, code]) => [code, name]));

// One Check at a time, in the order asked.
let queue = Promise.resolve();
const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (service) => {
  queue = queue.then(() => new Promise((resolve) => {
    client.Check({ service: service.trim() }, { deadline: Date.now() + 3000 }, (error, reply) => {
      if (error) {
        console.log(`${codeNames[error.code] || error.code}: ${error.details}`);
      } else {
        console.log(reply.status);
      }
      resolve();
    });
  }));
});
lines.on('close', () => {
  queue.then(() => {
    client.close();
    process.exit(0);
  });
});
