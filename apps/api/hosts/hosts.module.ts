import { Module } from '@nestjs/common';
import { TunnelsModule } from '../tunnels/tunnels.module';
import { HostsController } from './hosts.controller';
import { HostsService } from './hosts.service';

@Module({ imports: [TunnelsModule], controllers: [HostsController], providers: [HostsService] })
export class HostsModule {}
