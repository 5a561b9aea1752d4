// Starts dynalite (in memory) on 127.0.0.1 and a free port, and prints that port.
// Tables are ACTIVE at once: the suite makes one per test.
const dynalite = require('dynalite')

const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
server.listen(0, '127.0.0.1', () => {
  console.log(server.address().port)
})
