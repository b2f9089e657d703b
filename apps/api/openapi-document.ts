import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';

export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('agent-onboarding API')
    .setDescription(
      'Onboard existing hosts into monitoring (SSH bootstrap, cloudroot, Telegraf, tunnels, verified in InfluxDB). ' +
        'Errors are JSON `{ statusCode, code, message, errors? }` with a stable `code`.',
    )
    .setVersion('1')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'AO_API_TOKENS: viewer (GET, codec) or operator (everything)' })
    .build();
  return SwaggerModule.createDocument(app, config);
}
