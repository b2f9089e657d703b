import { Module } from '@nestjs/common';
import { TunnelsController } from './tunnels.controller';
import { TunnelsService } from './tunnels.service';

@Module({ controllers: [TunnelsController], providers: [TunnelsService], exports: [TunnelsService] })
export class TunnelsModule {}
