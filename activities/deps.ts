import type { Client } from '@temporalio/client';
import type { Keyring } from '../lib/keyring';
import type { Logger } from '../lib/logging';
import type { AppConfig, InventoryConfig } from '../lib/config';

/** Everything activities need from the outside, passed explicitly so tests can give real or fake ones. */
export interface ActivityDeps {
  keyring: Keyring;
  /** InfluxDB as the controller reaches it (verification, tunnel targets) and the write credentials Telegraf gets. */
  influx: AppConfig['influx'];
  /** Telegraf binary shipped to hosts in artifact mode. */
  telegrafArtifact?: string;
  /** For activities that steer other workflows (ensure a tunnel keeper and wait for it). */
  temporal?: { client: Client; tunnelTaskQueue: string };
  /** Which inventory files and URLs `readInventory` may read (AO_INVENTORY_DIRS / AO_INVENTORY_URLS); absent = none. */
  inventory?: InventoryConfig;
  log: Logger;
}
