export { InProcessCluster, call, freePort, waitFor } from './in-process-cluster.js';
