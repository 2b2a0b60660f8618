// Writes and reads DB values with the npm nodes7 client.
// usage: node nodes7.js <node_modules dir> <host> <port>
const NodeS7 = require(require('path').join(process.argv[2], 'nodes7'));
const conn = new NodeS7({ silent: true });
const timer = setTimeout(() => { console.log('timeout'); process.exit(5); }, 15000);
conn.initiateConnection({ port: Number(process.argv[4]), host: process.argv[3], rack: 0, slot: 2, timeout: 5000 }, (err) => {
  if (err) { console.log('connect error: ' + err); process.exit(2); }
  conn.setTranslationCB((tag) => tag);
  conn.addItems(['DB10,INT4', 'DB10,REAL8', 'DB1,WORD4', 'DB10,X0.3']);
  conn.writeItems(['DB10,INT4', 'DB10,REAL8', 'DB10,X0.3'], [1234, 3.5, true], (bad) => {
    if (bad) { console.log('write failed'); process.exit(3); }
    conn.readAllItems((bad, values) => {
      console.log(JSON.stringify({ bad: bad, values: values }));
      clearTimeout(timer);
      conn.dropConnection(() => process.exit(bad ? 4 : 0));
    });
  });
});
