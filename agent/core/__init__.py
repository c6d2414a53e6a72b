"""Pure, synchronous core: windowing, scaling, SPC. No asyncio, no protocol libraries."""
