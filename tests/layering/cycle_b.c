/* The other half of the deliberate call cycle (cycle_a.c). */
int layering_cycle_a(int n);
int layering_cycle_b(int n);

int layering_cycle_b(int n)
{
	return n > 0 ? layering_cycle_a(n - 1) : 1;
}
