// A Weir node: the composition root that wires the libraries into one process, by role.
//
//   controller role: RaftNode over RaftStorage (<data.dir>/__cluster_metadata) with the gRPC
//     transport, the QuorumController as its state machine, LogFetchServer for observers, and
//     the ControllerService, all on the controller listener (9093); timers for broker session
//     expiry, preferred-leader elections and snapshots.
//   broker role: a RaftObserver following the metadata log into a BrokerMetadataListener, the
//     BrokerLifecycle (register, heartbeat, controlled shutdown), and the AdminService on the
//     broker listener (9092).
//   both: the HTTP listener (8080) with /healthz, /readyz and /metrics.
//
// A combined node's broker follows the log through FetchLog like any other broker: one code
// path for both deployments, at the price of a loopback call per commit.

import { join } from 'node:path';
import { Server } from '@grpc/grpc-js';
import { QuorumController } from '@weir/controller';
import { proto } from '@weir/protocol';
import {
  GrpcRaftTransport,
  LogFetchServer,
  RaftNode,
  RaftObserver,
  RaftStorage,
  type QuorumVoter,
  checkVoterMembership,
} from '@weir/raft';
import { type DirectoryLock, acquireDirectoryLock } from '@weir/storage';
import type { Logger } from 'pino';
import { BrokerLifecycle } from './broker/broker-lifecycle.js';
import { adminServiceHandlers } from './broker/admin-service.js';
import { ControllerChannel } from './broker/controller-channel.js';
import { BrokerMetadataListener } from './broker/metadata-listener.js';
import { type DataPlane, startDataPlane } from './broker/data-plane.js';
import { controllerServiceHandlers } from './controller/controller-service.js';
import type { ServerConfig } from './config/schema.js';
import { SERVER_GRPC_OPTIONS, bindServer, hostPort, shutdownServer } from './grpc.js';

/** What a node needs to start: ServerConfig with the cluster id resolved from meta.properties. */
export type NodeOptions = Omit<
  ServerConfig,
  'clusterId' | 'httpPort' | 'logLevel' | 'logFormat'
> & {
  readonly clusterId: string;
};

export const METADATA_LOG_DIRECTORY = '__cluster_metadata';
/** How often the active controller checks broker sessions (and the preferred-leader timer). */
const CONTROLLER_TICK_MS = 250;

interface ControllerRole {
  readonly storage: RaftStorage;
  readonly transport: GrpcRaftTransport;
  readonly raft: RaftNode;
  readonly controller: QuorumController;
  readonly server: Server;
  readonly timer: NodeJS.Timeout;
  /** Called on every change of this node's Raft role or of the leader it knows. */
  readonly roleListeners: Set<() => void>;
}

/** How long an active controller that stops waits for its successor to take over. */
const RESIGNATION_TIMEOUT_MS = 2_000;

interface BrokerRole {
  /** The bound broker port, the one the broker registers. */
  readonly port: number;
  readonly listener: BrokerMetadataListener;
  readonly observer: RaftObserver;
  readonly channel: ControllerChannel;
  readonly lifecycle: BrokerLifecycle;
  readonly dataPlane: DataPlane;
  readonly server: Server;
}

export class WeirNode {
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly options: NodeOptions,
    private readonly logger: Logger,
    private readonly lock: DirectoryLock,
    readonly controllerRole: ControllerRole | undefined,
    readonly brokerRole: BrokerRole | undefined,
    /** The ports actually bound (differ from the options when those ask for port 0). */
    readonly ports: { readonly broker?: number; readonly controller?: number },
  ) {}

  /** Starts every role of the node; throws (after undoing what started) when one fails. */
  static async start(options: NodeOptions, logger: Logger): Promise<WeirNode> {
    const lock = await acquireDirectoryLock(options.dataDir);
    let controllerRole: ControllerRole | undefined;
    try {
      const ports: { broker?: number; controller?: number } = {};
      if (options.processRoles.includes('controller')) {
        controllerRole = await startController(options, logger);
        ports.controller = await bindServer(
          controllerRole.server,
          options.listenHost,
          options.controllerPort,
          'controller.port',
        );
      }
      let brokerRole: BrokerRole | undefined;
      if (options.processRoles.includes('broker')) {
        brokerRole = await startBroker(options, logger);
        ports.broker = brokerRole.port;
        brokerRole.lifecycle.start();
      }
      logger.info({ roles: options.processRoles, ports }, 'node started');
      return new WeirNode(options, logger, lock, controllerRole, brokerRole, ports);
    } catch (error) {
      if (controllerRole !== undefined) await stopController(controllerRole);
      await lock.release();
      throw error;
    }
  }

  /** Whether the node serves what its roles promise, and if not, why. */
  readiness(): { ready: boolean; reason?: string } {
    const raft = this.controllerRole?.raft;
    if (raft !== undefined && raft.leaderId < 0) {
      return { ready: false, reason: 'the metadata quorum has no leader yet' };
    }
    const lifecycle = this.brokerRole?.lifecycle;
    if (lifecycle !== undefined && lifecycle.state !== 'running') {
      return { ready: false, reason: `the broker is ${lifecycle.state}` };
    }
    return { ready: true };
  }

  /**
   * Stops the node: a broker first moves its leaderships away (controlled shutdown), then every
   * listener and store closes. Safe to call more than once.
   */
  shutdown(): Promise<void> {
    this.stopping ??= this.stopRoles();
    return this.stopping;
  }

  private async stopRoles(): Promise<void> {
    const broker = this.brokerRole;
    if (broker !== undefined) {
      const { remainingLeaderships } = await broker.lifecycle.shutdown(
        this.options.controlledShutdownTimeoutMs,
      );
      this.logger.info({ remainingLeaderships }, 'controlled shutdown done');
      await shutdownServer(broker.server);
      // No more deltas first: a delta applied after the data plane closed would start fetchers
      // that nothing stops.
      await broker.observer.stop();
      await broker.dataPlane.close();
      broker.channel.close();
    }
    if (this.controllerRole !== undefined) await stopController(this.controllerRole);
    await this.lock.release();
    this.logger.info('node stopped');
  }
}

async function startController(options: NodeOptions, logger: Logger): Promise<ControllerRole> {
  const { nodeId, clusterId, quorumVoters } = options;
  checkVoterMembership(nodeId, quorumVoters);
  const voterAddresses = addressesOf(quorumVoters);
  const storage = await RaftStorage.open(join(options.dataDir, METADATA_LOG_DIRECTORY), {
    nodeId,
    clusterId,
  });
  const peers = new Map([...voterAddresses].filter(([id]) => id !== nodeId));
  const transport = new GrpcRaftTransport({ nodeId, clusterId, peers });
  const controller = new QuorumController({
    nodeId,
    brokerSessionTimeoutMs: options.brokerSessionTimeoutMs,
    defaultPartitions: options.numPartitions,
    defaultReplicationFactor: options.defaultReplicationFactor,
    leaderImbalanceCheckIntervalMs: options.leaderImbalanceCheckIntervalMs,
  });
  const roleListeners = new Set<() => void>();
  const raft = await RaftNode.start({
    id: nodeId,
    voters: quorumVoters.map((voter) => voter.id),
    storage,
    transport,
    stateMachine: controller,
    tickMs: options.controllerQuorumTickMs,
    raft: {
      electionTicks: options.controllerQuorumElectionTicks,
      heartbeatTicks: options.controllerQuorumHeartbeatTicks,
    },
    onRoleChange: (role, leaderId, term) => {
      logger.info({ role, leaderId, term }, 'metadata quorum role changed');
      for (const listener of roleListeners) listener();
    },
  });
  controller.attach(raft);
  const server = new Server(SERVER_GRPC_OPTIONS);
  const fetchServer = new LogFetchServer(raft, { clusterId });
  server.addService(proto.weir.raft.RaftServiceService, {
    ...transport.serverHandlers(),
    ...fetchServer.handlers(),
  });
  server.addService(
    proto.weir.controller.ControllerServiceService,
    controllerServiceHandlers({ clusterId, controller, raft }),
  );
  const snapshots = new SnapshotPolicy(raft, controller, options.metadataSnapshotIntervalRecords);
  const timer = setInterval(() => {
    controller.tick().then(
      ({ fencedBrokers }) => {
        if (fencedBrokers.length > 0) logger.info({ fencedBrokers }, 'fenced expired brokers');
      },
      (error: unknown) => logger.debug({ err: error }, 'controller tick failed'),
    );
    snapshots
      .maybeSnapshot()
      .catch((error: unknown) => logger.warn({ err: error }, 'metadata snapshot failed'));
  }, CONTROLLER_TICK_MS);
  return { storage, transport, raft, controller, server, timer, roleListeners };
}

async function stopController(role: ControllerRole): Promise<void> {
  await resignLeadership(role, RESIGNATION_TIMEOUT_MS);
  clearInterval(role.timer);
  await shutdownServer(role.server, 500);
  await role.raft.stop();
  role.transport.close();
  await role.storage.close();
}

/**
 * An active controller that stops hands the quorum's leadership to its most caught-up voter
 * first (Raft's leadership transfer: TimeoutNow), so the quorum does not wait out an election
 * timeout without a controller, as Kafka's controller resigns on shutdown. Resolves once another
 * node leads, or after `timeoutMs` (then the others elect one as after a crash).
 */
function resignLeadership(role: ControllerRole, timeoutMs: number): Promise<void> {
  const { raft } = role;
  if (!raft.isLeader) return Promise.resolve();
  const [successor] = [...raft.followerMatchIndexes()]
    .filter(([id]) => id !== raft.id)
    .sort(([, a], [, b]) => b - a);
  if (successor === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      role.roleListeners.delete(check);
      resolve();
    };
    const check = () => {
      if (!raft.isLeader) done();
    };
    const timer = setTimeout(done, timeoutMs);
    role.roleListeners.add(check);
    raft.transferLeadership(successor[0]);
  });
}

/**
 * Starts following the metadata log and binds the broker listener; the broker registers the
 * port it really got (port 0 picks one).
 */
async function startBroker(options: NodeOptions, logger: Logger): Promise<BrokerRole> {
  const { nodeId, clusterId } = options;
  const voters = addressesOf(options.quorumVoters);
  const listener = new BrokerMetadataListener(nodeId, logger);
  const channel = new ControllerChannel({ voters });
  // The lifecycle exists before the listener is bound; it registers the bound port at start().
  let port = options.brokerPort;
  const lifecycle = new BrokerLifecycle({
    brokerId: nodeId,
    clusterId,
    endpoints: () => [{ name: 'BROKER', host: options.advertisedHost, port }],
    rack: options.rack,
    channel,
    metadataOffset: () => listener.image.offset,
    heartbeatIntervalMs: options.brokerHeartbeatIntervalMs,
    logger,
    // Caught up with the metadata log: logs of topics deleted (or partitions moved away) while
    // this broker was down can be told from logs of topics it has not heard of yet.
    onUnfenced: () => {
      dataPlane?.replicas
        .deleteStrayLogs()
        .catch((error: unknown) => logger.error({ err: error }, 'deleting stray logs failed'));
    },
  });
  // The observer starts last: every delta it publishes must find the data plane listening
  // (a restarted broker replays its partitions' leadership from the first delta on).
  const following: { observer?: RaftObserver } = {};
  const controllerId = (): number => following.observer?.leaderId ?? -1;
  let dataPlane: DataPlane | undefined;
  const server = new Server(SERVER_GRPC_OPTIONS);
  try {
    dataPlane = await startDataPlane({
      brokerId: nodeId,
      clusterId,
      dataDir: options.dataDir,
      replicaLagTimeMaxMs: options.replicaLagTimeMaxMs,
      highWatermarkCheckpointIntervalMs: options.replicaHighWatermarkCheckpointIntervalMs,
      maxInFlightBytesPerConnection: options.maxInFlightBytesPerConnection,
      isCaughtUp: () => lifecycle.hasCaughtUp,
      logRetentionCheckIntervalMs: options.logRetentionCheckIntervalMs,
      listener,
      channel,
      brokerEpoch: () => lifecycle.brokerEpoch,
      controllerId,
      logger,
    });
    server.addService(
      proto.weir.admin.AdminServiceService,
      adminServiceHandlers({ clusterId, image: () => listener.image, controllerId, channel }),
    );
    dataPlane.addServices(server);
    port = await bindServer(server, options.listenHost, options.brokerPort, 'broker.port');
  } catch (error) {
    await dataPlane?.close();
    channel.close();
    throw error;
  }
  const observer = RaftObserver.start({
    nodeId,
    clusterId,
    voters,
    stateMachine: listener,
    onError: (voter, error) => logger.debug({ voter, err: error }, 'metadata fetch failed'),
  });
  following.observer = observer;
  return { port, listener, observer, channel, lifecycle, dataPlane, server };
}

/** host:port (brackets around IPv6 hosts) of each voter, by node id. */
export function addressesOf(voters: readonly QuorumVoter[]): Map<number, string> {
  return new Map(voters.map(({ id, host, port }) => [id, hostPort(host, port)]));
}

/**
 * Snapshots the controller's image every `intervalRecords` applied entries, so the Raft log is
 * truncated and a restarted node or a new observer replays a snapshot plus a short tail.
 */
class SnapshotPolicy {
  private lastSnapshotIndex = 0;
  private running = false;

  constructor(
    private readonly raft: RaftNode,
    private readonly controller: QuorumController,
    private readonly intervalRecords: number,
  ) {}

  async maybeSnapshot(): Promise<void> {
    const offset = Number(this.controller.image.offset);
    if (this.running || offset - this.lastSnapshotIndex < this.intervalRecords) return;
    this.running = true;
    try {
      await this.raft.snapshot(offset, this.controller.snapshotData());
      this.lastSnapshotIndex = offset;
    } finally {
      this.running = false;
    }
  }
}
