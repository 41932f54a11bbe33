/* Half of a deliberate call cycle (cycle_b.c): the archive the layering
 * test builds from the two must be reported by check_layers.py. */
int layering_cycle_a(int n);
int layering_cycle_b(int n);

int layering_cycle_a(int n)
{
	return n > 0 ? layering_cycle_b(n - 1) : 0;
}
